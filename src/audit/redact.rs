//! Redaction: what an export must never show.
//!
//! Everything journaled is displayed through [`redact_json`], which replaces, wherever they
//! appear (object values, free text, scripts, command bytes, URLs):
//!
//! * the value of any object key that names a secret (`password`, `passwd`, `pwd`, `secret`,
//!   `token`, `api_key`/`apikey`, `private_key`, `credential(s)`, `authorization`, `cookie`,
//!   `sig`, `remote_id`, and any key containing one of these words);
//! * in text, `key=value`, `key: value`, `"key": "value"` and PowerShell `-Key value` pairs for
//!   the same key words;
//! * `Authorization:`/`Proxy-Authorization:` header values (`Bearer …`, `Basic …`);
//! * URL user information `scheme://user:password@` (→ `scheme://[REDACTED]@`);
//! * SAS-like and signed-URL query parameters: `sig`, `signature`, `token`, `access_token`,
//!   `password`, `secret`, `key`, `code`, `X-Amz-Signature`, `X-Amz-Credential`,
//!   `X-Amz-Security-Token`, `X-Goog-Signature`, … (`?sig=…` → `?sig=[REDACTED]`).
//!
//! Each replaced value becomes [`REDACTED`]. Redaction errs on the side of hiding: a false
//! positive costs only the byte-level verifiability of that one record (see `docs/audit.md`).

use regex::{Captures, Regex};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::LazyLock;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Words that make a key (JSON key, `key=`, `-Key`) name a secret.
const KEY_WORDS: &str = r"password|passwd|pwd|secret|token|api[_-]?key|private[_-]?key|credentials?|authorization|cookie|remote[_-]?id";

static SECRET_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)(?:{KEY_WORDS})|^(?:sig|signature|sas|auth)$"
    ))
    .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

static URL_USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'"<>?#]*:[^/\s@'"<>?#]*@"#)
        .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

static QUERY_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)([?&;](?:sig|signature|token|access_token|id_token|refresh_token|password|passwd|pwd|secret|client_secret|api_key|apikey|api-key|key|code|auth|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)=)[^&\s'"<>#\\]+"#,
    )
    .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

static AUTH_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b((?:proxy-)?authorization\s*:\s*)(?:(?:bearer|basic|digest|negotiate|ntlm|sharedkey|token)\s+)?[^\s'",;}]+"#,
    )
    .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)((?:"|')?[\w\-]*(?:{KEY_WORDS})[\w\-]*(?:"|')?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|\[REDACTED\]|[^\s,;&}}\]"']+)"#
    ))
    .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

static PS_PARAMETER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?i)(\s-[\w]*(?:{KEY_WORDS})[\w]*\s+)('(?:[^']|'')*'|"(?:[^"\\`]|[\\`].)*"|[^\s$;)(|]+)"#
    ))
    .unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
});

/// The replacement of a captured value, keeping its quotes.
fn quoted_replacement(value: &str) -> String {
    if value.starts_with('"') {
        format!("\"{REDACTED}\"")
    } else if value.starts_with('\'') {
        format!("'{REDACTED}'")
    } else {
        REDACTED.to_string()
    }
}

/// Whether `key` names a secret.
#[must_use]
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEY.is_match(key)
}

/// `text` with every secret it shows replaced by [`REDACTED`] (borrowed when nothing is).
#[must_use]
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let mut out: Cow<'_, str> = Cow::Borrowed(text);
    let replaced = URL_USERINFO.replace_all(&out, format!("${{1}}{REDACTED}@").as_str());
    if let Cow::Owned(s) = replaced {
        out = Cow::Owned(s);
    }
    let replaced = QUERY_SECRET.replace_all(&out, format!("${{1}}{REDACTED}").as_str());
    if let Cow::Owned(s) = replaced {
        out = Cow::Owned(s);
    }
    let replaced = AUTH_HEADER.replace_all(&out, format!("${{1}}{REDACTED}").as_str());
    if let Cow::Owned(s) = replaced {
        out = Cow::Owned(s);
    }
    let replaced = KEY_VALUE.replace_all(&out, |c: &Captures<'_>| {
        let value = c.get(2).map_or("", |m| m.as_str());
        if value.contains(REDACTED) {
            c[0].to_string()
        } else {
            format!("{}{}", &c[1], quoted_replacement(value))
        }
    });
    if let Cow::Owned(s) = replaced {
        out = Cow::Owned(s);
    }
    let replaced = PS_PARAMETER.replace_all(&out, |c: &Captures<'_>| {
        let value = c.get(2).map_or("", |m| m.as_str());
        if value.contains(REDACTED) {
            c[0].to_string()
        } else {
            format!("{}{}", &c[1], quoted_replacement(value))
        }
    });
    if let Cow::Owned(s) = replaced {
        out = Cow::Owned(s);
    }
    // Borrowed unless something changed; an owned copy equal to the input is not a change.
    match out {
        Cow::Owned(s) if s == text => Cow::Borrowed(text),
        other => other,
    }
}

/// Redacts `value` in place (see the module documentation); returns whether anything changed.
pub fn redact_json(value: &mut Value) -> bool {
    match value {
        Value::String(s) => match redact_text(s) {
            Cow::Borrowed(_) => false,
            Cow::Owned(r) => {
                *s = r;
                true
            }
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| redact_json(v) | changed),
        Value::Object(map) => {
            let mut changed = false;
            for (key, v) in map.iter_mut() {
                let hidden = match v {
                    Value::Null | Value::Bool(_) => false,
                    Value::String(s) => s.is_empty() || s == REDACTED,
                    _ => false,
                };
                if is_secret_key(key) && !hidden {
                    *v = Value::String(REDACTED.into());
                    changed = true;
                } else {
                    changed |= redact_json(v);
                }
            }
            changed
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn url_userinfo_is_hidden() {
        assert_eq!(
            redact_text("proxy http://svc:Pa55w0rd@proxy:3128/ failed"),
            "proxy http://[REDACTED]@proxy:3128/ failed"
        );
        // A user without a password is not a secret.
        assert_eq!(
            redact_text("https://user@host/path"),
            "https://user@host/path"
        );
    }

    #[test]
    fn sas_and_signed_url_tokens_are_hidden() {
        assert_eq!(
            redact_text(
                "https://acct.blob.core.windows.net/c/pkg.zip?sv=2020-08-04&se=2030-01-01&sig=AbC%2Bd%3D&sp=r"
            ),
            "https://acct.blob.core.windows.net/c/pkg.zip?sv=2020-08-04&se=2030-01-01&sig=[REDACTED]&sp=r"
        );
        assert_eq!(
            redact_text("GET /x?X-Amz-Credential=AKIA/1&X-Amz-Signature=deadbeef"),
            "GET /x?X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]"
        );
        assert_eq!(
            redact_text("/p?access_token=abc.def"),
            "/p?access_token=[REDACTED]"
        );
    }

    #[test]
    fn authorization_headers_and_key_values_are_hidden() {
        assert_eq!(
            redact_text("Authorization: Bearer eyJhbGciOi.x.y\nHost: a"),
            "Authorization: [REDACTED]\nHost: a"
        );
        assert_eq!(
            redact_text("proxy-authorization: Basic c3ZjOnB3"),
            "proxy-authorization: [REDACTED]"
        );
        assert_eq!(
            redact_text(r#"{"password": "hunter2", "user": "svc"}"#),
            r#"{"password": "[REDACTED]", "user": "svc"}"#
        );
        assert_eq!(
            redact_text("client_secret=abc123&scope=x"),
            "client_secret=[REDACTED]&scope=x"
        );
        assert_eq!(
            redact_text("Connect -Credential $c -Password 'it''s secret' -Name x"),
            "Connect -Credential $c -Password '[REDACTED]' -Name x"
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "Set-CMApplication -Name 'FileZilla' -Publisher 'Tim Kosse'",
            "https://portal.example.com/api/connector/v1/packages/pkg-5c2a",
            r#"{"id":"cmd-1","kind":"push","idempotency_key":"result-1"}"#,
            "step 3 'ensure-application' succeeded",
        ] {
            assert!(matches!(redact_text(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn json_values_under_secret_keys_are_hidden() {
        let mut v = json!({
            "proxy": {"url": "http://u:p@h:1", "username": "svc", "password": "pw"},
            "headers": {"Authorization": "Bearer t", "Accept": "*/*"},
            "api_key": 42,
            "steps": ["ok", "token=abc"],
            "none": null,
            "idempotency_key": "result-1"
        });
        assert!(redact_json(&mut v));
        assert_eq!(
            v,
            json!({
                "proxy": {"url": "http://[REDACTED]@h:1", "username": "svc", "password": "[REDACTED]"},
                "headers": {"Authorization": "[REDACTED]", "Accept": "*/*"},
                "api_key": "[REDACTED]",
                "steps": ["ok", "token=[REDACTED]"],
                "none": null,
                "idempotency_key": "result-1"
            })
        );
        let mut again = v.clone();
        assert!(!redact_json(&mut again), "redaction is idempotent");
    }

    fn secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9+%._~-]{6,40}".prop_map(|s| format!("Zq{s}"))
    }

    proptest! {
        #[test]
        fn no_template_leaks_its_secret(
            secret in secret(),
            prefix in "[ a-zA-Z0-9.:/]{0,20}",
            suffix in "[ a-zA-Z0-9.:/]{0,20}",
            template in 0usize..12,
        ) {
            let s = secret.as_str();
            let embedded = match template {
                0 => format!("https://svc:{s}@host.example/x"),
                1 => format!("https://host/p.zip?sv=2020&sig={s}&sp=r"),
                2 => format!("Authorization: Bearer {s}"),
                3 => format!("Proxy-Authorization: Basic {s}"),
                4 => format!("{{\"password\":\"{s}\"}}"),
                5 => format!("password={s}"),
                6 => format!("api_key: {s}"),
                7 => format!("-Password '{s}'"),
                8 => format!("\"clientSecret\": \"{s}\""),
                9 => format!("https://h/p?access_token={s}"),
                10 => format!("x-amz-security-token: {s}"),
                _ => format!("https://h/p?X-Amz-Signature={s}#frag"),
            };
            let text = format!("{prefix} {embedded} {suffix}");
            let out = redact_text(&text);
            prop_assert!(!out.contains(s), "{text:?} → {out:?}");
            prop_assert!(out.contains(REDACTED));
            // Idempotent.
            let twice = redact_text(&out).into_owned();
            prop_assert_eq!(twice, out.clone().into_owned());
            // The same through JSON, under an innocent key and under a secret one.
            let mut v = json!({"message": text, "token": s});
            prop_assert!(redact_json(&mut v));
            let rendered = v.to_string();
            prop_assert!(!rendered.contains(s), "{rendered}");
        }

        #[test]
        fn text_without_key_words_or_urls_is_unchanged(text in "[ 0-9A-Fa-f.,()\\[\\]-]{0,80}") {
            prop_assert!(matches!(redact_text(&text), Cow::Borrowed(_)));
        }
    }
}
