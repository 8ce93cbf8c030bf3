// Prints facts the kafka-clients jar on the classpath holds only as code, as TSV on stdout:
//   DumpProtocol errors    -> code, name, retriable, default_message   (the Errors enum)
//   DumpProtocol api-keys  -> api_key, name, oldest, latest, latest_stable, listeners   (the ApiKeys enum)
//   DumpProtocol features  -> feature, level, production, bootstrap_metadata_level, release
//                             (kafka-server-common's MetadataVersion and Feature enums)
// Run by tests/tools/setup_kafka_messages.sh; only public API of kafka-clients and kafka-server-common.
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.server.common.Feature;
import org.apache.kafka.server.common.FeatureVersion;
import org.apache.kafka.server.common.MetadataVersion;

public class DumpProtocol {
    public static void main(String[] args) {
        StringBuilder out = new StringBuilder();
        if (args.length == 1 && args[0].equals("errors")) {
            out.append("code\tname\tretriable\tdefault_message\n");
            for (Errors e : Errors.values()) {
                boolean retriable = e.exception() instanceof RetriableException;
                String message = e.exception() == null ? "" : clean(e.exception().getMessage());
                out.append(e.code()).append('\t').append(e.name()).append('\t').append(retriable)
                   .append('\t').append(message).append('\n');
            }
        } else if (args.length == 1 && args[0].equals("api-keys")) {
            out.append("api_key\tname\toldest\tlatest\tlatest_stable\tlisteners\n");
            for (ApiKeys k : ApiKeys.values()) {
                out.append(k.id).append('\t').append(k.name()).append('\t').append(k.oldestVersion())
                   .append('\t').append(k.latestVersion(true)).append('\t').append(k.latestVersion(false))
                   .append('\t').append(k.messageType.listeners()).append('\n');
            }
        } else if (args.length == 1 && args[0].equals("features")) {
            out.append("feature\tlevel\tproduction\tbootstrap_metadata_level\trelease\n");
            for (MetadataVersion mv : MetadataVersion.values()) {
                if (mv.featureLevel() < MetadataVersion.MINIMUM_VERSION.featureLevel()) continue;
                out.append(MetadataVersion.FEATURE_NAME).append('\t').append(mv.featureLevel()).append('\t')
                   .append(mv.featureLevel() <= MetadataVersion.LATEST_PRODUCTION.featureLevel()).append('\t')
                   .append(mv.featureLevel()).append('\t').append(mv.version()).append('\n');
            }
            for (Feature f : Feature.PRODUCTION_FEATURES) {
                for (FeatureVersion fv : f.featureVersions()) {
                    out.append(f.featureName()).append('\t').append(fv.featureLevel()).append('\t')
                       .append(f.isProductionReady(fv.featureLevel())).append('\t')
                       .append(fv.bootstrapMetadataVersion().featureLevel()).append('\t')
                       .append(fv.bootstrapMetadataVersion().version()).append('\n');
                }
            }
        } else {
            System.err.println("usage: DumpProtocol errors|api-keys|features");
            System.exit(2);
        }
        System.out.print(out);
    }

    static String clean(String s) {
        return s == null ? "" : s.replace('\t', ' ').replace('\n', ' ');
    }
}
