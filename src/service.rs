//! `sccm-connector service install|uninstall|start|stop` and `run --service`: the connector as a
//! Windows service (the `windows-service` crate). The service runs
//! `sccm-connector.exe run --config FILE --service`, starts automatically at boot, and on start
//! resumes every unfinished job from the journal like any `run`. A Stop or Shutdown from the
//! service control manager is the daemon's clean stop (running steps finish first); while it
//! lasts the service reports StopPending with a checkpoint that grows every
//! [`STOP_REPORT_EVERY`] and a wait hint of [`STOP_WAIT_HINT`], so the service control manager
//! sees progress rather than a hung service.
//!
//! `service install` also sets the failure actions ([`RESTARTS`]): the service control manager
//! restarts the connector after a crash, and — with failure actions enabled for non-crash
//! failures — after it stopped with an error (a non-zero exit code).
//!
//! On other systems every action exits with code 2 and points at the systemd unit in
//! `docs/operations.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The service's name.
pub const SERVICE_NAME: &str = "sccm-connector";
pub const DISPLAY_NAME: &str = "SCCM Connector";
pub const DESCRIPTION: &str = "Polls the packaging portal and drives ConfigMgr through PowerShell; resumes its jobs from its journal.";

/// The failure actions `service install` sets: restart after each of the first three failures,
/// after these delays (the last one repeats for every later failure).
pub const RESTARTS: [Duration; 3] = [
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(300),
];
/// A day without failure resets the failure count (the next failure restarts after 10 s again).
pub const FAILURE_RESET: Duration = Duration::from_secs(24 * 3600);

/// How often StopPending is reported again, with the next checkpoint, while the daemon stops.
pub const STOP_REPORT_EVERY: Duration = Duration::from_secs(5);
/// The wait hint of each StopPending report: the service control manager expects the next
/// checkpoint within it (several report intervals, so a busy machine is not taken for a hang).
pub const STOP_WAIT_HINT: Duration = Duration::from_secs(30);

/// The StopPending reports of a stop: checkpoints 1, 2, 3, … each with [`STOP_WAIT_HINT`]. The
/// service control manager takes a checkpoint that does not grow within the wait hint for a hung
/// service, so every report must carry the next one.
#[derive(Debug, Default)]
pub struct StopProgress {
    checkpoint: u32,
}

impl StopProgress {
    /// The next report's `(checkpoint, wait_hint)`.
    pub fn next_report(&mut self) -> (u32, Duration) {
        self.checkpoint = self.checkpoint.saturating_add(1);
        (self.checkpoint, STOP_WAIT_HINT)
    }
}

/// What to do with the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the service for `config` (an absolute path is stored).
    Install {
        config: PathBuf,
    },
    Uninstall,
    Start,
    Stop,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(
        "Windows services exist only on Windows; on Linux run `sccm-connector run --config FILE` \
         under systemd (see the unit in docs/operations.md, \"Install\")"
    )]
    Unsupported,
    #[error("the configuration file {path} cannot be used: {reason}")]
    Config { path: String, reason: String },
    #[error("{action}: {detail}")]
    Windows {
        action: &'static str,
        detail: String,
    },
}

/// The configuration path as the service will see it: absolute, and existing.
pub fn absolute_config(config: &Path) -> Result<PathBuf, ServiceError> {
    std::fs::canonicalize(config).map_err(|e| ServiceError::Config {
        path: config.display().to_string(),
        reason: e.to_string(),
    })
}

/// Performs `action`; returns what to tell the operator.
pub fn manage(action: &Action) -> Result<String, ServiceError> {
    #[cfg(windows)]
    {
        windows::manage(action)
    }
    #[cfg(not(windows))]
    {
        let _ = action;
        Err(ServiceError::Unsupported)
    }
}

/// Runs the connector under the service control manager (`run --config FILE --service`).
pub fn run_as_service(config: PathBuf) -> Result<(), ServiceError> {
    #[cfg(windows)]
    {
        windows::run(config)
    }
    #[cfg(not(windows))]
    {
        let _ = config;
        Err(ServiceError::Unsupported)
    }
}

#[cfg(windows)]
mod windows {
    use super::{
        Action, DESCRIPTION, DISPLAY_NAME, FAILURE_RESET, RESTARTS, SERVICE_NAME,
        STOP_REPORT_EVERY, ServiceError, StopProgress, absolute_config,
    };
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    use windows_service::service::{
        ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
        ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
        ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
    use windows_service::{define_windows_service, service_dispatcher};

    fn err(action: &'static str) -> impl Fn(windows_service::Error) -> ServiceError {
        move |e| ServiceError::Windows {
            action,
            detail: e.to_string(),
        }
    }

    fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, ServiceError> {
        ServiceManager::local_computer(None::<&str>, access).map_err(err(
            "cannot open the service control manager (run from an elevated prompt)",
        ))
    }

    pub fn manage(action: &Action) -> Result<String, ServiceError> {
        match action {
            Action::Install { config } => {
                let config = absolute_config(config)?;
                let exe = std::env::current_exe().map_err(|e| ServiceError::Windows {
                    action: "cannot find this program's path",
                    detail: e.to_string(),
                })?;
                let info = ServiceInfo {
                    name: OsString::from(SERVICE_NAME),
                    display_name: OsString::from(DISPLAY_NAME),
                    service_type: ServiceType::OWN_PROCESS,
                    start_type: ServiceStartType::AutoStart,
                    error_control: ServiceErrorControl::Normal,
                    executable_path: exe.clone(),
                    launch_arguments: vec![
                        OsString::from("run"),
                        OsString::from("--config"),
                        config.clone().into_os_string(),
                        OsString::from("--service"),
                    ],
                    dependencies: vec![],
                    account_name: None,
                    account_password: None,
                };
                let manager =
                    manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
                let service = manager
                    .create_service(&info, ServiceAccess::CHANGE_CONFIG)
                    .map_err(err("cannot create the service"))?;
                service
                    .set_description(DESCRIPTION)
                    .map_err(err("cannot set the service's description"))?;
                service
                    .update_failure_actions(ServiceFailureActions {
                        reset_period: ServiceFailureResetPeriod::After(FAILURE_RESET),
                        reboot_msg: None,
                        command: None,
                        actions: Some(
                            RESTARTS
                                .iter()
                                .map(|delay| ServiceAction {
                                    action_type: ServiceActionType::Restart,
                                    delay: *delay,
                                })
                                .collect(),
                        ),
                    })
                    .map_err(err(
                        "cannot set the service's recovery (restart on failure)",
                    ))?;
                // A stop with an error (non-zero exit code) counts as a failure too.
                service
                    .set_failure_actions_on_non_crash_failures(true)
                    .map_err(err(
                        "cannot set the service's recovery (restart on failure)",
                    ))?;
                Ok(format!(
                    "service {SERVICE_NAME} installed: {} run --config {} --service (automatic start, LocalSystem, restarted after 10 s, 1 min, then 5 min when it fails; change the account in services.msc)",
                    exe.display(),
                    config.display()
                ))
            }
            Action::Uninstall => {
                let manager = manager(ServiceManagerAccess::CONNECT)?;
                let service = manager
                    .open_service(
                        SERVICE_NAME,
                        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
                    )
                    .map_err(err("cannot open the service"))?;
                service
                    .delete()
                    .map_err(err("cannot mark the service for deletion"))?;
                let status = service
                    .query_status()
                    .map_err(err("cannot query the service"))?;
                if status.current_state != ServiceState::Stopped {
                    service.stop().map_err(err("cannot stop the service"))?;
                }
                Ok(format!(
                    "service {SERVICE_NAME} removed (the journal, spool and logs are left in place)"
                ))
            }
            Action::Start => {
                let manager = manager(ServiceManagerAccess::CONNECT)?;
                let service = manager
                    .open_service(SERVICE_NAME, ServiceAccess::START)
                    .map_err(err("cannot open the service"))?;
                service
                    .start::<&str>(&[])
                    .map_err(err("cannot start the service"))?;
                Ok(format!("service {SERVICE_NAME} starting"))
            }
            Action::Stop => {
                let manager = manager(ServiceManagerAccess::CONNECT)?;
                let service = manager
                    .open_service(
                        SERVICE_NAME,
                        ServiceAccess::STOP | ServiceAccess::QUERY_STATUS,
                    )
                    .map_err(err("cannot open the service"))?;
                service.stop().map_err(err("cannot stop the service"))?;
                // Running steps finish first: wait for Stopped, up to the SCM's own patience.
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let status = service
                        .query_status()
                        .map_err(err("cannot query the service"))?;
                    if status.current_state == ServiceState::Stopped {
                        return Ok(format!("service {SERVICE_NAME} stopped"));
                    }
                    if Instant::now() > deadline {
                        return Ok(format!(
                            "service {SERVICE_NAME} is still stopping (running steps finish first)"
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
    }

    /// The configuration path, handed from `run` to the service's main function.
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();

    define_windows_service!(ffi_service_main, service_main);

    pub fn run(config: PathBuf) -> Result<(), ServiceError> {
        let _ = CONFIG.set(config);
        service_dispatcher::start(SERVICE_NAME, ffi_service_main).map_err(err(
            "cannot connect to the service control manager (run --service is for the service itself; use `run --config FILE` in a console)",
        ))
    }

    /// What the StopPending reporter hears: the service control manager asked for a stop, or
    /// the daemon has returned.
    enum Event {
        Stop,
        Done,
    }

    fn service_main(_arguments: Vec<OsString>) {
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let (events_tx, events) = mpsc::channel::<Event>();
        let stop_events = events_tx.clone();
        let handler = move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                let _ = stop_tx.send(true);
                let _ = stop_events.send(Event::Stop);
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        };
        let Ok(status) = service_control_handler::register(SERVICE_NAME, handler) else {
            return;
        };
        let report = move |state: ServiceState,
                           accept: ServiceControlAccept,
                           code: u32,
                           checkpoint: u32,
                           wait_hint: Duration| {
            let _ = status.set_service_status(ServiceStatus {
                service_type: ServiceType::OWN_PROCESS,
                current_state: state,
                controls_accepted: accept,
                exit_code: ServiceExitCode::Win32(code),
                checkpoint,
                wait_hint,
                process_id: None,
            });
        };
        report(
            ServiceState::Running,
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
            0,
            0,
            Duration::ZERO,
        );
        // Once a stop is asked for: StopPending with a growing checkpoint until the daemon
        // returns (running steps finish first, which may take minutes).
        let reporter = std::thread::spawn(move || {
            if !matches!(events.recv(), Ok(Event::Stop)) {
                return;
            }
            let mut progress = StopProgress::default();
            loop {
                let (checkpoint, wait_hint) = progress.next_report();
                report(
                    ServiceState::StopPending,
                    ServiceControlAccept::empty(),
                    0,
                    checkpoint,
                    wait_hint,
                );
                match events.recv_timeout(STOP_REPORT_EVERY) {
                    Ok(Event::Stop) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(Event::Done) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        let code = match run_daemon(&mut stop_rx) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("the connector stopped with an error: {e}");
                // Any non-zero Win32 code marks a failure: the failure actions restart it.
                1
            }
        };
        let _ = events_tx.send(Event::Done);
        let _ = reporter.join();
        report(
            ServiceState::Stopped,
            ServiceControlAccept::empty(),
            code,
            0,
            Duration::ZERO,
        );
    }

    fn run_daemon(stop: &mut tokio::sync::watch::Receiver<bool>) -> Result<(), String> {
        let path = CONFIG.get().cloned().unwrap_or_default();
        let offset = crate::logging::local_offset();
        let config = crate::config::Config::load(&path).map_err(|e| e.to_string())?;
        let _logs = crate::logging::init(&config.logging, offset).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime.block_on(async {
            let shutdown = async {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            crate::daemon::run(config, shutdown)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod stop_tests {
    use super::*;

    #[test]
    fn stop_pending_reports_a_growing_checkpoint_with_a_wait_hint_longer_than_the_interval() {
        let mut progress = StopProgress::default();
        let reports: Vec<_> = (0..5).map(|_| progress.next_report()).collect();
        assert_eq!(
            reports.iter().map(|r| r.0).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(reports.iter().all(|r| r.1 == STOP_WAIT_HINT));
        assert!(STOP_WAIT_HINT >= 3 * STOP_REPORT_EVERY);
    }

    #[test]
    fn failures_restart_the_service_sooner_first_and_reset_after_a_day() {
        assert_eq!(RESTARTS.len(), 3);
        assert!(RESTARTS.windows(2).all(|w| w[0] < w[1]));
        assert!(RESTARTS[0] >= Duration::from_secs(1));
        assert_eq!(FAILURE_RESET, Duration::from_secs(86_400));
    }
}

#[cfg(all(test, not(windows)))]
mod tests {
    use super::*;

    #[test]
    fn every_action_points_at_systemd_elsewhere() {
        for action in [
            Action::Install {
                config: PathBuf::from("c.toml"),
            },
            Action::Uninstall,
            Action::Start,
            Action::Stop,
        ] {
            let e = manage(&action).expect_err("not on Windows");
            assert!(e.to_string().contains("docs/operations.md"), "{e}");
        }
        assert!(matches!(
            run_as_service(PathBuf::from("c.toml")),
            Err(ServiceError::Unsupported)
        ));
    }
}
