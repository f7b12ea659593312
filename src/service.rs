//! `sccm-connector service install|uninstall|start|stop` and `run --service`: the connector as a
//! Windows service (the `windows-service` crate). The service runs
//! `sccm-connector.exe run --config FILE --service`, starts automatically at boot, and on start
//! resumes every unfinished job from the journal like any `run`. A Stop or Shutdown from the
//! service control manager is the daemon's clean stop (running steps finish first).
//!
//! On other systems every action exits with code 2 and points at the systemd unit in
//! `docs/operations.md`.

use std::path::{Path, PathBuf};

/// The service's name.
pub const SERVICE_NAME: &str = "sccm-connector";
pub const DISPLAY_NAME: &str = "SCCM Connector";
pub const DESCRIPTION: &str = "Polls the packaging portal and drives ConfigMgr through PowerShell; resumes its jobs from its journal.";

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
    use super::{Action, DESCRIPTION, DISPLAY_NAME, SERVICE_NAME, ServiceError, absolute_config};
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};
    use windows_service::service::{
        ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode,
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
                Ok(format!(
                    "service {SERVICE_NAME} installed: {} run --config {} --service (automatic start, LocalSystem; change the account in services.msc)",
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

    fn service_main(_arguments: Vec<OsString>) {
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let handler = move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                let _ = stop_tx.send(true);
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        };
        let Ok(status) = service_control_handler::register(SERVICE_NAME, handler) else {
            return;
        };
        let report = |state: ServiceState, accept: ServiceControlAccept, code: u32, wait: u64| {
            let _ = status.set_service_status(ServiceStatus {
                service_type: ServiceType::OWN_PROCESS,
                current_state: state,
                controls_accepted: accept,
                exit_code: ServiceExitCode::Win32(code),
                checkpoint: 0,
                wait_hint: Duration::from_secs(wait),
                process_id: None,
            });
        };
        report(
            ServiceState::Running,
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
            0,
            0,
        );
        let code = match run_daemon(&mut stop_rx) {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("the connector stopped with an error: {e}");
                // ERROR_SERVICE_SPECIFIC_ERROR-style: any non-zero Win32 code marks a failure.
                1
            }
        };
        report(
            ServiceState::Stopped,
            ServiceControlAccept::empty(),
            code,
            0,
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
