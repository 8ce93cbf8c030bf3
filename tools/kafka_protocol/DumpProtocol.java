// Prints facts the kafka-clients jar on the classpath holds only as code, as TSV on stdout:
//   DumpProtocol errors    -> code, name, retriable, default_message   (the Errors enum)
//   DumpProtocol api-keys  -> api_key, name, oldest, latest, latest_stable, listeners   (the ApiKeys enum)
// Run by tests/tools/setup_kafka_messages.sh; only public API of kafka-clients.
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.Errors;

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
        } else {
            System.err.println("usage: DumpProtocol errors|api-keys");
            System.exit(2);
        }
        System.out.print(out);
    }

    static String clean(String s) {
        return s == null ? "" : s.replace('\t', ' ').replace('\n', ' ');
    }
}
