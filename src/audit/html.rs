//! The HTML export: one self-contained page (inline CSS, inline JS, no network) for reading a
//! journal — per job its status, a timeline chart of its step attempts (drawn as SVG by the
//! inline script from an embedded JSON block), the scripts that ran and every event with its
//! chain hash, plus the chain's base, head and verification status.
//!
//! Everything from the journal is redacted (see `redact`) and HTML-escaped ([`escape`]); the
//! embedded JSON escapes `<`, `>` and `&` so no journal text can close its `<script>` element;
//! a Content-Security-Policy allows only the page's own script (by its SHA-256) and no network.
//! Not verifiable by `verify`: export JSON Lines or CSV for that.

use super::AuditError;
use super::export::{ExportMeta, ExportSummary, Filter, Tally, plan, walk};
use super::record::{Content, RecordLine, b64};
use super::redact::redact_text;
use super::time::rfc3339_millis;
use journal::Journal;
use replay::{Event, StepKind};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

/// `text` with `& < > " '` replaced by character references.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe inside a `<script>` element: `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes
/// (they only ever occur inside JSON strings, where the escapes mean the same characters).
fn script_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#eee}code,pre,.hash{font-family:ui-monospace,Consolas,monospace;font-size:12px}
pre.script{background:#fff;border:1px solid #ccc;padding:.5em;overflow:auto;max-height:30em;white-space:pre}
.status{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff;font-weight:bold}
td code{word-break:break-all}table.events td:nth-child(5){max-width:40em}
.status.connector{background:#1565c0}.status.ok{background:#2e7d32}.status.failed{background:#c62828}.status.rejected{background:#ef6c00}.status.unfinished{background:#546e7a}
.verified{color:#2e7d32;font-weight:bold}.redacted{color:#ef6c00}.omitted{color:#777}
svg.timeline{width:100%;background:#fff;border:1px solid #ddd}
rect.bar.ok{fill:#43a047}rect.bar.failed{fill:#e53935}rect.bar.incomplete{fill:#fb8c00}rect.bar.running{fill:#90a4ae}
text.label{font-size:11px;fill:#333}text.axis{font-size:10px;fill:#777}
"#;

/// Draws every job's timeline from the embedded data, then marks the page rendered.
const SCRIPT: &str = r#"
(function () {
  var NS = 'http://www.w3.org/2000/svg';
  var data = JSON.parse(document.getElementById('audit-data').textContent);
  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  data.jobs.forEach(function (job) {
    var svg = document.getElementById('timeline-' + job.index);
    if (!svg) { return; }
    var width = 960, left = 260, right = 20, row = 20, top = 8;
    var span = Math.max(job.end - job.start, 1);
    var scale = (width - left - right) / span;
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + (top + job.bars.length * row + 24));
    job.bars.forEach(function (bar, i) {
      var y = top + i * row;
      var x = left + (bar.start - job.start) * scale;
      var w = Math.max((bar.end - bar.start) * scale, 2);
      svg.appendChild(el('text', { 'class': 'label', x: 4, y: y + 13 }, bar.label));
      var rect = el('rect', { 'class': 'bar ' + bar.outcome, x: x.toFixed(1), y: y + 2, width: w.toFixed(1), height: row - 6 });
      rect.appendChild(el('title', {}, bar.label + ': ' + bar.outcome + ', ' + (bar.end - bar.start) + ' ms'));
      svg.appendChild(rect);
    });
    var axis = top + job.bars.length * row + 14;
    svg.appendChild(el('text', { 'class': 'axis', x: left, y: axis }, '0 s'));
    svg.appendChild(el('text', { 'class': 'axis', x: width - right - 60, y: axis }, (span / 1000).toFixed(1) + ' s'));
    svg.setAttribute('data-bars', String(job.bars.length));
  });
  document.body.setAttribute('data-rendered', 'yes');
})();
"#;

#[derive(Debug, Default)]
struct JobView {
    first_seq: u64,
    command_id: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    start: i64,
    end: i64,
    steps: Vec<(String, String, Option<String>)>,
    /// (step, attempt) → bar index.
    open: BTreeMap<(u32, u32), usize>,
    bars: Vec<Value>,
    rows: Vec<RecordLine>,
}

fn text(t: &str) -> String {
    escape(&redact_text(t))
}

impl JobView {
    fn step_label(&self, step: u32, attempt: u32) -> String {
        let name = self
            .steps
            .get(step as usize)
            .map_or_else(|| format!("step {step}"), |(n, _, _)| format!("{step} {n}"));
        let label = if attempt > 1 {
            format!("{name} (attempt {attempt})")
        } else {
            name
        };
        redact_text(&label).into_owned()
    }

    fn close(&mut self, step: u32, attempt: u32, at: i64, outcome: &str) {
        if let Some(i) = self.open.remove(&(step, attempt))
            && let Some(bar) = self.bars.get_mut(i)
        {
            bar["end"] = json!(at);
            bar["outcome"] = json!(outcome);
        }
    }

    fn apply(&mut self, at: i64, event: &Event) {
        self.end = self.end.max(at);
        match event {
            Event::CommandReceived {
                command_id, kind, ..
            } => {
                self.command_id = command_id.clone();
                self.kind = Some(format!("{kind:?}"));
            }
            Event::Planned { steps, .. } => {
                for s in steps {
                    let script = match &s.kind {
                        StepKind::Script { script, .. } => Some(script.clone()),
                        _ => None,
                    };
                    self.steps
                        .push((s.name.clone(), s.kind.label().to_string(), script));
                }
            }
            Event::StepStarted { step, attempt } => {
                let label = self.step_label(*step, *attempt);
                self.open.insert((*step, *attempt), self.bars.len());
                self.bars.push(json!({
                    "label": label, "start": at, "end": at, "outcome": "running"
                }));
            }
            Event::StepSucceeded { step, attempt, .. } => self.close(*step, *attempt, at, "ok"),
            Event::StepFailed { step, attempt, .. } => self.close(*step, *attempt, at, "failed"),
            Event::StepIncomplete { step, attempt, .. } => {
                self.close(*step, *attempt, at, "incomplete");
            }
            Event::JobFinished { status, .. } => self.status = Some(status.as_str().to_string()),
            _ => {}
        }
    }
}

/// Writes the HTML export of the chosen records.
///
/// # Errors
/// [`AuditError::Journal`] if the chain does not verify while it is read, [`AuditError::Write`]
/// if `out` fails.
pub fn write_html(
    journal: &Journal,
    filter: &Filter,
    meta: &ExportMeta,
    out: &mut impl Write,
) -> Result<ExportSummary, AuditError> {
    let plan = plan(journal, filter)?;
    let mut jobs: BTreeMap<String, JobView> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut tally = Tally::default();
    walk(journal, filter, &plan, |line, event| {
        tally.add(&line);
        if line.content == Content::Omitted {
            return Ok(());
        }
        let job = line.job.clone().unwrap_or_default();
        let view = jobs.entry(job.clone()).or_insert_with(|| {
            order.push(job.clone());
            JobView {
                first_seq: line.seq,
                start: line.timestamp_ms.unwrap_or_default(),
                end: line.timestamp_ms.unwrap_or_default(),
                ..JobView::default()
            }
        });
        if let Some(e) = &event {
            view.apply(line.timestamp_ms.unwrap_or_default(), e);
        }
        view.rows.push(line);
        Ok(())
    })?;

    let mut data_jobs = Vec::new();
    let mut body = String::new();
    for (index, id) in order.iter().enumerate() {
        let Some(view) = jobs.get(id) else { continue };
        data_jobs.push(json!({
            "index": index, "start": view.start, "end": view.end, "bars": view.bars,
        }));
        let status = if id.as_str() == replay::JobId::CONNECTOR.0.to_string() {
            "connector".to_string()
        } else {
            view.status.clone().unwrap_or_else(|| "unfinished".into())
        };
        let _ = write!(
            body,
            "<section class=\"job\" id=\"job-{index}\"><h2>Job <code>{}</code> <span class=\"status {}\">{}</span></h2>\n<p>command <code>{}</code>, kind {}, first record {}, {} → {}</p>\n",
            text(id),
            escape(&status),
            escape(&status),
            text(view.command_id.as_deref().unwrap_or("-")),
            text(view.kind.as_deref().unwrap_or("-")),
            view.first_seq,
            escape(&rfc3339_millis(view.start)),
            escape(&rfc3339_millis(view.end)),
        );
        if !view.bars.is_empty() {
            let _ = write!(
                body,
                "<h3>Timeline</h3>\n<svg class=\"timeline\" id=\"timeline-{index}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"step attempts over time\"></svg>\n"
            );
        }
        if view.steps.iter().any(|(_, _, s)| s.is_some()) {
            body.push_str("<h3>Scripts</h3>\n");
            for (i, (name, _, script)) in view.steps.iter().enumerate() {
                if let Some(script) = script {
                    let _ = writeln!(
                        body,
                        "<details class=\"step\"><summary>step {i} <code>{}</code></summary><pre class=\"script\">{}</pre></details>",
                        text(name),
                        text(script)
                    );
                }
            }
        }
        body.push_str("<h3>Events</h3>\n<table class=\"events\"><tr><th>seq</th><th>job seq</th><th>time</th><th>event</th><th>details</th><th>hash</th></tr>\n");
        for row in &view.rows {
            let details = row
                .data
                .as_ref()
                .map(|d| replay::one_line(&d.to_string(), 240))
                .unwrap_or_default();
            let class = match row.content {
                Content::Redacted => " class=\"redacted\"",
                Content::Pruned => " class=\"omitted\"",
                _ => "",
            };
            let _ = writeln!(
                body,
                "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td><code>{}</code></td><td class=\"hash\" title=\"{}\">{}</td></tr>",
                row.seq,
                row.job_seq.unwrap_or_default(),
                text(row.timestamp.as_deref().unwrap_or("")),
                text(
                    row.event
                        .as_deref()
                        .unwrap_or(if row.content == Content::Pruned {
                            "(pruned: see the archive)"
                        } else {
                            "(undecodable)"
                        })
                ),
                if row.redacted { " (redacted)" } else { "" },
                text(&details),
                escape(&row.hash),
                escape(row.hash.get(..16).unwrap_or(&row.hash)),
            );
        }
        body.push_str("</table></section>\n");
    }

    let Tally {
        count,
        full,
        redacted,
        omitted,
        pruned,
    } = tally;
    let data = json!({ "jobs": data_jobs });
    let script_hash = b64(&Sha256::digest(SCRIPT.as_bytes()));
    let verified = if plan.count == 0 {
        "no records chosen".to_string()
    } else {
        format!(
            "<span class=\"verified\">✔ chain verified</span> while exporting: records {}–{} recompute, link by link, from the chain base to the head",
            plan.first, plan.last
        )
    };
    let filter_text = {
        let mut parts = Vec::new();
        if let Some(s) = filter.since {
            parts.push(format!("since {}", rfc3339_millis(s)));
        }
        if let Some(u) = filter.until {
            parts.push(format!("until {}", rfc3339_millis(u)));
        }
        if !filter.jobs.is_empty() {
            let jobs: Vec<String> = filter.jobs.iter().map(ToString::to_string).collect();
            parts.push(format!("jobs {}", jobs.join(", ")));
        }
        if parts.is_empty() {
            "everything".to_string()
        } else {
            parts.join(", ")
        }
    };
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; img-src data:\">\n\
<title>sccm-connector audit: {source}</title>\n<style>{STYLE}</style></head>\n\
<body data-rendered=\"no\">\n<h1>sccm-connector audit export</h1>\n\
<table class=\"chain\">\n\
<tr><th>journal</th><td><code>{source}</code></td></tr>\n\
<tr><th>exported at</th><td>{exported}</td></tr>\n\
<tr><th>chosen</th><td>{filter_text}</td></tr>\n\
<tr><th>records covered</th><td>{first}–{last}: {full} shown, <span class=\"redacted\">{redacted} redacted</span>, <span class=\"omitted\">{omitted} left out by the choice</span>, <span class=\"omitted\">{pruned} pruned from the journal (in an archive)</span></td></tr>\n\
<tr><th>chain base</th><td class=\"hash\" id=\"chain-base\">{base}</td></tr>\n\
<tr><th>chain head</th><td class=\"hash\" id=\"chain-head\">{head}</td></tr>\n\
<tr><th>verification</th><td id=\"verification\">{verified}</td></tr>\n\
</table>\n<p>A page for reading. To prove what is shown, export JSON Lines or CSV (signed) and run <code>sccm-connector verify</code>.</p>\n\
{body}\
<script type=\"application/json\" id=\"audit-data\">{data}</script>\n\
<script>{SCRIPT}</script>\n</body></html>\n",
        source = text(&meta.source),
        exported = escape(&meta.exported_at_ms.map(rfc3339_millis).unwrap_or_default()),
        filter_text = escape(&filter_text),
        first = plan.first,
        last = plan.last,
        base = plan.base.to_hex(),
        head = plan.head.to_hex(),
        data = script_json(&data),
    );
    out.write_all(page.as_bytes())
        .and_then(|()| out.flush())
        .map_err(AuditError::Write)?;
    Ok(ExportSummary {
        count,
        first_seq: plan.first,
        last_seq: plan.last,
        chain_base: plan.base,
        head: plan.head,
        full,
        redacted,
        omitted,
        pruned,
        content_sha256: None,
        signed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        let hostile = "</script><img src=x onerror=alert(1)>&\"'";
        assert_eq!(
            escape(hostile),
            "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#39;"
        );
        let json = script_json(&json!({ "s": hostile }));
        assert!(!json.contains('<') && !json.contains('>'), "{json}");
        let back: Value = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back["s"], hostile);
    }
}
