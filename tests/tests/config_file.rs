//! `--config FILE` through the real binary: the file's keys apply, PGVISOR_* variables win over
//! the file and flags over both, and mistakes stop pgvisor with the file and the key named.
//! `pgvisor report` shows which admin address won: it names it when nobody answers there.

use std::path::Path;
use std::process::{Command, Output};

use pgvisor_tests::binary::pgvisor_binary;

/// Runs `pgvisor ARGS` with `env` and no other PGVISOR_* variable.
fn pgvisor(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(pgvisor_binary());
    command.args(args).env("RUST_BACKTRACE", "0");
    for (name, _) in std::env::vars_os().filter(|(n, _)| n.to_string_lossy().starts_with("PGVISOR_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("run pgvisor")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config file");
    path.to_string_lossy().into_owned()
}

#[test]
fn command_line_beats_environment_beats_file() {
    let dir = tempfile::tempdir().unwrap();
    // Ports 1-3 on loopback: nobody listens, so report fails naming the address it used.
    let file = write(dir.path(), "pgvisor.toml", "admin = \"127.0.0.1:1\"\nlock-wait = \"1s\"\n");
    let from_file = pgvisor(&["report", "--config", &file], &[]);
    assert!(stderr(&from_file).contains("admin port at 127.0.0.1:1:"), "{}", stderr(&from_file));
    let from_env = pgvisor(&["report"], &[("PGVISOR_CONFIG", &file), ("PGVISOR_ADMIN", "127.0.0.1:2")]);
    assert!(stderr(&from_env).contains("admin port at 127.0.0.1:2:"), "{}", stderr(&from_env));
    let from_flag =
        pgvisor(&["report", "--config", &file, "--admin", "127.0.0.1:3"], &[("PGVISOR_ADMIN", "127.0.0.1:2")]);
    assert!(stderr(&from_flag).contains("admin port at 127.0.0.1:3:"), "{}", stderr(&from_flag));
}

#[test]
fn mistakes_stop_pgvisor_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = write(dir.path(), "unknown.toml", "lock_wiat = \"1s\"\n");
    let out = pgvisor(&["--config", &unknown, "--upstream", "127.0.0.1:1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{unknown}: lock_wiat: unknown key")), "{}", stderr(&out));

    let bad_kind = write(dir.path(), "kind.toml", "[advice]\ndisabled = [\"select_starr\"]\n");
    let out = pgvisor(&["--upstream", "127.0.0.1:1"], &[("PGVISOR_CONFIG", &bad_kind)]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(e.contains(&format!("{bad_kind}: [advice].disabled: expected an advice kind, one of ")), "{e}");
    assert!(e.contains("got \"select_starr\""), "{e}");

    let bad_value = write(dir.path(), "value.toml", "idle_in_transaction = \"a while\"\n");
    let out = pgvisor(&["--config", &bad_value, "--upstream", "127.0.0.1:1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "{bad_value}: idle_in_transaction: expected a duration such as 100ms, 2s or 1.5s, got \"a while\""
        )),
        "{}",
        stderr(&out)
    );

    let missing = dir.path().join("missing.toml");
    let out = pgvisor(&["--config", &missing.to_string_lossy(), "--upstream", "127.0.0.1:1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read the config file"), "{}", stderr(&out));
}
