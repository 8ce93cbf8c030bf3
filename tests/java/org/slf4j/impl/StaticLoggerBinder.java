// SLF4J 1.7 binding for KafkaCheck: the Kafka client's log lines go to stderr, filtered by level.
// Level: -Dkafkacheck.log=off|error|warn|info|debug|trace, else $KAFKACHECK_LOG, else "warn".
package org.slf4j.impl;

import org.slf4j.ILoggerFactory;
import org.slf4j.spi.LoggerFactoryBinder;

public final class StaticLoggerBinder implements LoggerFactoryBinder {
    private static final StaticLoggerBinder SINGLETON = new StaticLoggerBinder();

    /** Read by slf4j-api's version check. */
    public static String REQUESTED_API_VERSION = "1.6.99";

    private final ILoggerFactory factory = StderrLogger::new;

    public static StaticLoggerBinder getSingleton() {
        return SINGLETON;
    }

    @Override
    public ILoggerFactory getLoggerFactory() {
        return factory;
    }

    @Override
    public String getLoggerFactoryClassStr() {
        return StderrLogger.class.getName();
    }
}
