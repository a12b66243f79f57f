//! Telling systemd (Type=notify) how the service is: READY, RELOADING,
//! STOPPING, STATUS and the watchdog's pings. Outside systemd it does nothing.

use sd_notify::NotifyState;

pub(crate) fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
