//! What a run does in its running containers: exec (to completion or
//! detached), readiness and exit waits, logs, pause and kill.

use std::time::{Duration, Instant};

use futures::StreamExt;
use testcontainers::bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};

use super::{Lab, LabError};

impl Lab {
    /// Creates an exec of `cmd` in the role's container; its id.
    async fn create_exec(
        &self,
        role: &str,
        cmd: &[&str],
        attach: bool,
    ) -> Result<String, LabError> {
        let id = self.container(role)?.id().to_string();
        let options = CreateExecOptions {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            attach_stdout: Some(attach),
            attach_stderr: Some(attach),
            ..Default::default()
        };
        Ok(self.docker.create_exec(&id, options).await?.id)
    }

    /// Runs `cmd` in the role's container to completion: (exit code, stdout, stderr).
    pub async fn exec(&self, role: &str, cmd: &[&str]) -> Result<(i64, String, String), LabError> {
        let exec_id = self.create_exec(role, cmd, true).await?;
        let (mut stdout, mut stderr) = (String::new(), String::new());
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec_id, None).await?
        {
            while let Some(Ok(chunk)) = output.next().await {
                use testcontainers::bollard::container::LogOutput;
                match chunk {
                    LogOutput::StdOut { message } => {
                        stdout.push_str(&String::from_utf8_lossy(&message))
                    }
                    LogOutput::StdErr { message } => {
                        stderr.push_str(&String::from_utf8_lossy(&message))
                    }
                    _ => {}
                }
            }
        }
        let code = self
            .docker
            .inspect_exec(&exec_id)
            .await?
            .exit_code
            .unwrap_or(-1);
        Ok((code, stdout, stderr))
    }

    /// Like `exec`, but fails with the command's output when it exits non-zero.
    pub async fn exec_ok(&self, role: &str, cmd: &[&str]) -> Result<String, LabError> {
        let (code, stdout, stderr) = self.exec(role, cmd).await?;
        if code != 0 {
            return Err(LabError::role(
                role,
                format!("`{}` exited {code}: {}{}", cmd.join(" "), stdout, stderr),
            ));
        }
        Ok(stdout)
    }

    /// Starts `cmd` in the role's container and returns at once (a packet
    /// delayer, say); it dies with the container.
    pub async fn exec_detached(&self, role: &str, cmd: &[&str]) -> Result<(), LabError> {
        let exec_id = self.create_exec(role, cmd, false).await?;
        self.docker
            .start_exec(
                &exec_id,
                Some(StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await?;
        Ok(())
    }

    /// Waits until `probe` (a shell snippet) succeeds in the role's container.
    pub async fn wait_until(
        &self,
        role: &str,
        probe: &str,
        limit: Duration,
    ) -> Result<(), LabError> {
        let start = Instant::now();
        loop {
            if self.exec(role, &["sh", "-c", probe]).await?.0 == 0 {
                return Ok(());
            }
            if start.elapsed() > limit {
                let (out, err) = self.logs(role).await;
                return Err(LabError::role(
                    role,
                    format!("not ready after {limit:?} ({probe})\n{out}{err}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the role's main process to exit; its exit code.
    pub async fn wait_exit(&self, role: &str, limit: Duration) -> Result<i64, LabError> {
        let container = self.container(role)?;
        let start = Instant::now();
        loop {
            let running = container
                .is_running()
                .await
                .map_err(LabError::container(role))?;
            if !running {
                let code = container
                    .exit_code()
                    .await
                    .map_err(LabError::container(role))?;
                return Ok(code.unwrap_or(-1));
            }
            if start.elapsed() > limit {
                return Err(LabError::role(
                    role,
                    format!("still running after {limit:?}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The role's stdout and stderr so far.
    pub async fn logs(&self, role: &str) -> (String, String) {
        let Ok(container) = self.container(role) else {
            return Default::default();
        };
        let stdout = container.stdout_to_vec().await.unwrap_or_default();
        let stderr = container.stderr_to_vec().await.unwrap_or_default();
        (
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// Freezes a container's processes.
    pub async fn pause(&self, role: &str) -> Result<(), LabError> {
        self.container(role)?
            .pause()
            .await
            .map_err(LabError::container(role))
    }

    /// Stops a container abruptly (a node that loses power).
    pub async fn kill(&self, role: &str) -> Result<(), LabError> {
        let id = self.container(role)?.id().to_string();
        self.docker.kill_container(&id, None).await?;
        Ok(())
    }
}
