// Prints the broker and topic ConfigDefs of the Kafka jars on the classpath as JSON on stdout.
// Run by generate.py; only public ConfigDef API plus reflection on validator fields.
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.*;
import org.apache.kafka.common.config.ConfigDef;

public class DumpConfigs {
    public static void main(String[] args) throws Exception {
        StringBuilder out = new StringBuilder("{\n\"broker\": ");
        dump(out, (ConfigDef) staticCall("kafka.server.KafkaConfig", "configDef"));
        out.append(",\n\"topic\": ");
        dump(out, topicDef());
        out.append("\n}\n");
        System.out.print(out);
    }

    static ConfigDef topicDef() throws Exception {
        for (String m : new String[] {"configDefCopy", "configDef"}) {
            try { return (ConfigDef) staticCall("org.apache.kafka.storage.internals.log.LogConfig", m); }
            catch (NoSuchMethodException e) { /* try the next name */ }
        }
        throw new NoSuchMethodException("LogConfig config def");
    }

    static Object staticCall(String cls, String method) throws Exception {
        Method m = Class.forName(cls).getMethod(method);
        return m.invoke(null);
    }

    static void dump(StringBuilder out, ConfigDef def) throws Exception {
        TreeMap<String, ConfigDef.ConfigKey> keys = new TreeMap<>(def.configKeys());
        out.append("{");
        String sep = "\n";
        for (ConfigDef.ConfigKey k : keys.values()) {
            out.append(sep).append("  ").append(q(k.name)).append(": {");
            out.append("\"type\": ").append(q(k.type.name()));
            out.append(", \"default\": ").append(defaultJson(k));
            out.append(", \"importance\": ").append(q(k.importance == null ? null : k.importance.name()));
            out.append(", \"documentation\": ").append(q(k.documentation));
            validator(out, k.validator);
            out.append("}");
            sep = ",\n";
        }
        out.append("\n}");
    }

    static String defaultJson(ConfigDef.ConfigKey k) {
        if (!k.hasDefault()) return "{\"required\": true}";
        Object v = k.defaultValue;
        if (v == null) return "null";
        if (v instanceof Number || v instanceof Boolean) return v.toString();
        if (v instanceof List) return q(String.join(",", ((List<?>) v).stream().map(String::valueOf).toList()));
        if (v instanceof Class) return q(((Class<?>) v).getName());
        return q(ConfigDef.convertToString(v, k.type));
    }

    static void validator(StringBuilder out, ConfigDef.Validator v) throws Exception {
        if (v == null) return;
        out.append(", \"validator\": ").append(q(v.getClass().getSimpleName()));
        out.append(", \"valid\": ").append(q(v.toString()));
        Object min = field(v, "min"), max = field(v, "max");
        if (min != null) out.append(", \"min\": ").append(num(min));
        if (max != null) out.append(", \"max\": ").append(num(max));
    }

    static String num(Object n) {
        if (n instanceof Double || n instanceof Float) {
            double d = ((Number) n).doubleValue();
            return Double.isInfinite(d) || Double.isNaN(d) ? "null" : Double.toString(d);
        }
        return n.toString();
    }

    static Object field(Object o, String name) {
        for (Class<?> c = o.getClass(); c != null; c = c.getSuperclass()) {
            try {
                Field f = c.getDeclaredField(name);
                f.setAccessible(true);
                return f.get(o);
            } catch (NoSuchFieldException e) { /* superclass */ }
            catch (Exception e) { return null; }
        }
        return null;
    }

    static String q(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
}
