//! Files rejected for syntax, unknown keys, types, the environment and
//! `[server]`-level settings: each error must name its line and key.

use super::*;

#[test]
fn unset_variable_names_it_with_line_and_key() {
    let text = EXAMPLE.replace("${OPENAI_API_KEY}", "${NO_SUCH_KEY}");
    rejects(
        &text,
        20,
        "providers[0].api_key",
        "environment variable `NO_SUCH_KEY` is not set",
    );
    let e = rejects(
        "[server]\n\nlisten = \"${HOST}:8080\"",
        3,
        "server.listen",
        "`HOST`",
    );
    assert_eq!(
        e.to_string(),
        "tailmeter.toml:3: key `server.listen`: environment variable `HOST` is not set"
    );
}

#[test]
fn unknown_keys_are_errors_with_their_line() {
    rejects("# top\nbogus = 1\n", 2, "bogus", "unknown field `bogus`");
    rejects(
        "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n",
        3,
        "server.lisen",
        "unknown field `lisen`",
    );
    rejects(
        "server.portt = 1\n",
        1,
        "server.portt",
        "unknown field `portt`",
    );
    let two = format!(
        "{PROVIDER}{}",
        PROVIDER
            .replace("openai", "other")
            .replace("models", "modles")
    );
    rejects(&two, 14, "providers[1].modles", "unknown field `modles`");
    rejects(
        "[[identity.static]]\ncidr = \"10.0.0.1\"\nuser = \"a\"\n",
        3,
        "identity.static[0].user",
        "unknown field `user`",
    );
    rejects(
        "[prices.x]\ninput = 1\nouptut = 2\n",
        3,
        "prices.x.ouptut",
        "unknown field `ouptut`",
    );
}

#[test]
fn type_and_syntax_errors_have_lines() {
    rejects(
        "[server]\nthreads = \"many\"\n",
        2,
        "server.threads",
        "expected i64",
    );
    rejects(
        &format!("{PROVIDER}\n[metrics]\nmax_identities = 1.5\n"),
        10,
        "metrics.max_identities",
        "float",
    );
    let e = rejects(
        "[[providers]]\nname = \"a\"\nmodels = [\"x\",\n  3]\n",
        4,
        "providers[0].models[1]",
        "integer",
    );
    assert!(e.message.contains("expected a string"), "{e}");
    rejects("server = 5\n", 1, "server", "expected a [server] table");
    rejects(
        "\n[budgets]\nname = \"b\"\n",
        2,
        "budgets",
        "expected a sequence",
    );
    rejects(
        "server = { threads = 1, bad = 2 }\n",
        1,
        "server.bad",
        "unknown field",
    );
    for (text, line) in [
        ("[server]\nlisten = \"a\n", 2),
        ("[server]\nthreads = 1\n\n[log]\nlevel = 1979-05-27\n", 5),
    ] {
        let e = parse_text(text).expect_err("rejected");
        assert_eq!((e.line, e.key.as_deref()), (Some(line), None), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("tailmeter.toml:{line}: ")),
            "{e}"
        );
    }
    let e = parse_text("[log]\nlevel = 1979-05-27\n").expect_err("datetime");
    assert_eq!(
        e.message,
        "dates and times are not accepted: quote the value"
    );
}

#[test]
fn secrets_are_not_echoed_in_type_errors() {
    let e = rejects(
        "[clickhouse]\nurl = \"http://ch:8123\"\npassword = 987654321\n",
        3,
        "clickhouse.password",
        "string",
    );
    assert!(!e.to_string().contains("987654321"), "{e}");
}

#[test]
fn server_checks() {
    rejects(
        "[server]\nlisten = \"localhost:80\"\n",
        2,
        "server.listen",
        "IP:PORT",
    );
    rejects(
        "[server]\nadmin_listen = \"127.0.0.1:8080\"\n",
        2,
        "server.admin_listen",
        "must differ",
    );
    rejects(
        "[server]\nmax_request_body = \"32 MiBs\"\n",
        2,
        "server.max_request_body",
        "unknown unit `MiBs`",
    );
    rejects(
        "[server]\nmax_request_body = 0\n",
        2,
        "server.max_request_body",
        "greater than 0",
    );
    rejects(
        "[server]\nmax_request_body = true\n",
        2,
        "server.max_request_body",
        "a size",
    );
    rejects(
        "[server]\nshutdown_grace = \"30\"\n",
        2,
        "server.shutdown_grace",
        "has no unit",
    );
    rejects(
        "[server]\nthreads = 0\n",
        2,
        "server.threads",
        "greater than 0",
    );
    rejects(
        "[clickhouse]\ndatabase = \"x\"\n",
        1,
        "clickhouse.url",
        "required",
    );
    rejects(
        "[otlp]\nendpoint = \"grpc://x\"\n",
        2,
        "otlp.endpoint",
        "scheme `grpc`",
    );
    let c = ok(r#"[server]
max_request_body = 1024
shutdown_grace = "1m5s"
threads = 3
[log]
level = "debug"
"#);
    assert_eq!(
        (
            c.server.max_request_body,
            c.server.shutdown_grace,
            c.server.threads
        ),
        (1024, Duration::from_secs(65), 3)
    );
    assert_eq!(c.log.level.as_deref(), Some("debug"));
}
