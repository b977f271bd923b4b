//! Logging macros that write to the unit's log through the host.

/// Writes a formatted line to the unit's log at a level: `trace`, `debug`, `info`,
/// `warn` (or `warning`), `error`, or any [`LogLevel`](crate::LogLevel) expression.
///
/// ```no_run
/// cairn_sdk::log!(info, "serving on port {}", 8080);
/// cairn_sdk::log!(cairn_sdk::LogLevel::Debug, "plan has {} services", 2);
/// ```
#[macro_export]
macro_rules! log {
    (trace, $($arg:tt)+) => { $crate::log!($crate::LogLevel::Trace, $($arg)+) };
    (debug, $($arg:tt)+) => { $crate::log!($crate::LogLevel::Debug, $($arg)+) };
    (info, $($arg:tt)+) => { $crate::log!($crate::LogLevel::Info, $($arg)+) };
    (warn, $($arg:tt)+) => { $crate::log!($crate::LogLevel::Warning, $($arg)+) };
    (warning, $($arg:tt)+) => { $crate::log!($crate::LogLevel::Warning, $($arg)+) };
    (error, $($arg:tt)+) => { $crate::log!($crate::LogLevel::Error, $($arg)+) };
    ($level:expr, $($arg:tt)+) => {
        $crate::log($level, &::std::format!($($arg)+))
    };
}

/// Writes a formatted `trace` line to the unit's log.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Trace, $($arg)+) };
}

/// Writes a formatted `debug` line to the unit's log.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Debug, $($arg)+) };
}

/// Writes a formatted `info` line to the unit's log.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Info, $($arg)+) };
}

/// Writes a formatted `warning` line to the unit's log.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Warning, $($arg)+) };
}

/// Writes a formatted `error` line to the unit's log.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log!($crate::LogLevel::Error, $($arg)+) };
}
