// Minimal SLF4J 1.7 logger writing "<seconds since start> LEVEL [thread] logger - message" lines to stderr.
package org.slf4j.impl;

import org.slf4j.helpers.FormattingTuple;
import org.slf4j.helpers.MarkerIgnoringBase;
import org.slf4j.helpers.MessageFormatter;

public final class StderrLogger extends MarkerIgnoringBase {
    private static final long serialVersionUID = 1L;

    static final int TRACE = 0, DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4, OFF = 5;
    static final String[] NAMES = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};
    static final int THRESHOLD = threshold();
    static final long START = System.nanoTime();

    static int threshold() {
        String s = System.getProperty("kafkacheck.log");
        if (s == null) s = System.getenv("KAFKACHECK_LOG");
        if (s == null || s.isEmpty()) return WARN;
        switch (s.trim().toLowerCase()) {
            case "trace": return TRACE;
            case "debug": return DEBUG;
            case "info": return INFO;
            case "warn": return WARN;
            case "error": return ERROR;
            default: return OFF;
        }
    }

    StderrLogger(String name) {
        this.name = name;
    }

    private void log(int level, String msg, Throwable t) {
        if (level < THRESHOLD) return;
        StringBuilder sb = new StringBuilder(128);
        long ms = (System.nanoTime() - START) / 1_000_000;
        sb.append(String.format("%6d.%03d ", ms / 1000, ms % 1000));
        sb.append(NAMES[level]).append(" [").append(Thread.currentThread().getName()).append("] ")
            .append(name).append(" - ").append(msg);
        synchronized (System.err) {
            System.err.println(sb);
            if (t != null) t.printStackTrace(System.err);
        }
    }

    private void fmt(int level, String format, Object... args) {
        if (level < THRESHOLD) return;
        FormattingTuple ft = MessageFormatter.arrayFormat(format, args);
        log(level, ft.getMessage(), ft.getThrowable());
    }

    public boolean isTraceEnabled() { return TRACE >= THRESHOLD; }
    public void trace(String msg) { log(TRACE, msg, null); }
    public void trace(String format, Object arg) { fmt(TRACE, format, arg); }
    public void trace(String format, Object a1, Object a2) { fmt(TRACE, format, a1, a2); }
    public void trace(String format, Object... args) { fmt(TRACE, format, args); }
    public void trace(String msg, Throwable t) { log(TRACE, msg, t); }

    public boolean isDebugEnabled() { return DEBUG >= THRESHOLD; }
    public void debug(String msg) { log(DEBUG, msg, null); }
    public void debug(String format, Object arg) { fmt(DEBUG, format, arg); }
    public void debug(String format, Object a1, Object a2) { fmt(DEBUG, format, a1, a2); }
    public void debug(String format, Object... args) { fmt(DEBUG, format, args); }
    public void debug(String msg, Throwable t) { log(DEBUG, msg, t); }

    public boolean isInfoEnabled() { return INFO >= THRESHOLD; }
    public void info(String msg) { log(INFO, msg, null); }
    public void info(String format, Object arg) { fmt(INFO, format, arg); }
    public void info(String format, Object a1, Object a2) { fmt(INFO, format, a1, a2); }
    public void info(String format, Object... args) { fmt(INFO, format, args); }
    public void info(String msg, Throwable t) { log(INFO, msg, t); }

    public boolean isWarnEnabled() { return WARN >= THRESHOLD; }
    public void warn(String msg) { log(WARN, msg, null); }
    public void warn(String format, Object arg) { fmt(WARN, format, arg); }
    public void warn(String format, Object a1, Object a2) { fmt(WARN, format, a1, a2); }
    public void warn(String format, Object... args) { fmt(WARN, format, args); }
    public void warn(String msg, Throwable t) { log(WARN, msg, t); }

    public boolean isErrorEnabled() { return ERROR >= THRESHOLD; }
    public void error(String msg) { log(ERROR, msg, null); }
    public void error(String format, Object arg) { fmt(ERROR, format, arg); }
    public void error(String format, Object a1, Object a2) { fmt(ERROR, format, a1, a2); }
    public void error(String format, Object... args) { fmt(ERROR, format, args); }
    public void error(String msg, Throwable t) { log(ERROR, msg, t); }
}
