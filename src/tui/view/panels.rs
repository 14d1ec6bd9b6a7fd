//! The live panels: metrics (with sparklines and alerts) and the state of every expected index.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};

use super::{styled, truncate};
use crate::monitor::{AlertLevel, IndexLiveState, MetricsSample};
use crate::tui::app::App;

/// Paints the live panels into `area`: metrics on top, index status below.
pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let index_rows = (app.indexes.len() as u16 + 2).clamp(4, area.height / 2);
    let [metrics_area, index_area] =
        Layout::vertical([Constraint::Min(8), Constraint::Length(index_rows)]).areas(area);
    render_metrics(app, frame, metrics_area);
    render_indexes(app, frame, index_area);
}

fn render_metrics(app: &App, frame: &mut Frame, area: Rect) {
    let alerting = app.alerts.iter().map(|a| a.level).max();
    let border = match alerting {
        Some(AlertLevel::Critical) => Style::default().fg(Color::Red),
        Some(AlertLevel::Warning) => Style::default().fg(Color::Yellow),
        None => Style::default(),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Metrics ")
        .border_style(styled(app, border));
    let inner = block.inner(area);
    frame.render_widget(block, area);

    let Some(sample) = &app.metrics else {
        let text = match &app.monitor_error {
            Some(error) => format!("✗ {error}"),
            None => "waiting for the first sample…".to_string(),
        };
        frame.render_widget(Paragraph::new(text), inner);
        return;
    };
    let mut lines = figures(app, sample);
    if let Some(error) = &app.monitor_error {
        lines.insert(
            0,
            Line::styled(
                format!("✗ stale: {error}"),
                styled(app, Style::default().fg(Color::Red)),
            ),
        );
    }
    for alert in &app.alerts {
        let (mark, color) = match alert.level {
            AlertLevel::Critical => ("✗", Color::Red),
            AlertLevel::Warning => ("!", Color::Yellow),
        };
        lines.push(Line::styled(
            format!("{mark} {}", alert.message),
            styled(app, Style::default().fg(color).add_modifier(Modifier::BOLD)),
        ));
    }
    // Rows once wrapped, so the sparklines go below the last alert.
    let width = inner.width.max(1) as usize;
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(width)).sum();
    let text_rows = (rows as u16).min(inner.height);
    let [text_area, sparks_area] =
        Layout::vertical([Constraint::Length(text_rows), Constraint::Min(0)]).areas(inner);
    frame.render_widget(
        Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }),
        text_area,
    );
    render_sparklines(app, frame, sparks_area);
}

/// The figures of a sample, one line each, coloured by the runbook's thresholds.
fn figures(app: &App, sample: &MetricsSample) -> Vec<Line<'static>> {
    let thresholds = &app.runbook.thresholds;
    let used_pct = sample.connections_pct();
    let connection_color = if used_pct >= thresholds.connections_crit_pct {
        Color::Red
    } else if used_pct >= thresholds.connections_warn_pct {
        Color::Yellow
    } else {
        Color::Green
    };
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    // Tenths below 10 ms, whole milliseconds above: the line must fit a narrow panel.
    let short = |d: std::time::Duration| {
        let value = ms(d);
        if value < 10.0 {
            format!("{value:.1}")
        } else {
            format!("{value:.0}")
        }
    };
    let over = |value: f64, limit: f64| {
        if value > limit {
            Color::Yellow
        } else {
            Color::Reset
        }
    };
    let p95_color = over(ms(sample.latency_p95), thresholds.p95_latency_ms);
    let p99_color = over(ms(sample.latency_p99), thresholds.p99_latency_ms);
    let percent = |value: Option<f64>| value.map_or("–".to_string(), |v| format!("{v:.2}%"));
    let query_errors_color = over(
        sample.query_error_pct.unwrap_or(0.0),
        thresholds.query_error_pct,
    );
    let connection_errors_color = over(
        sample.connection_error_pct.unwrap_or(0.0),
        thresholds.connection_error_pct,
    );
    let storage_pct = sample.storage_pct();
    let storage = match storage_pct {
        Some(pct) => format!(" ({pct:.0}% of limit)"),
        None => String::new(),
    };
    let storage_color = over(storage_pct.unwrap_or(0.0), thresholds.storage_warn_pct);
    let wait_color = over(sample.longest_wait_ms, thresholds.connection_wait_ms);
    vec![
        Line::from(vec![
            Span::raw("connections "),
            Span::styled(
                format!(
                    "{}/{} ({used_pct:.0}%)",
                    sample.connections_used, sample.max_connections
                ),
                styled(app, Style::default().fg(connection_color)),
            ),
        ]),
        Line::from(format!("round trip  {:.1} ms", ms(sample.round_trip))),
        Line::from(vec![
            Span::raw(format!("latency     p50 {} ", short(sample.latency_p50))),
            Span::styled(
                format!("p95 {}", short(sample.latency_p95)),
                styled(app, Style::default().fg(p95_color)),
            ),
            Span::raw(" "),
            Span::styled(
                format!("p99 {}", short(sample.latency_p99)),
                styled(app, Style::default().fg(p99_color)),
            ),
            Span::raw(" ms"),
        ]),
        Line::from(format!(
            "commits/s   {:.1}  rollbacks/s {:.1}",
            sample.commits_per_s, sample.rollbacks_per_s
        )),
        Line::from(vec![
            Span::raw("errors      query "),
            Span::styled(
                percent(sample.query_error_pct),
                styled(app, Style::default().fg(query_errors_color)),
            ),
            Span::raw(" conn "),
            Span::styled(
                percent(sample.connection_error_pct),
                styled(app, Style::default().fg(connection_errors_color)),
            ),
        ]),
        Line::from(vec![
            Span::raw("size        "),
            Span::styled(
                format!("{}{storage}", bytes(sample.database_bytes)),
                styled(app, Style::default().fg(storage_color)),
            ),
        ]),
        Line::from(vec![
            Span::raw(format!("blocked     {}  wait ", sample.blocked_sessions)),
            Span::styled(
                format!("{:.0} ms", sample.longest_wait_ms),
                styled(app, Style::default().fg(wait_color)),
            ),
        ]),
    ]
}

/// A sparkline's label and the figure it draws from each sample.
type Series = (&'static str, fn(&MetricsSample) -> u64);

fn render_sparklines(app: &App, frame: &mut Frame, area: Rect) {
    let series: [Series; 3] = [
        ("conns", |s| s.connections_used.max(0) as u64),
        ("p95", |s| s.latency_p95.as_micros() as u64),
        ("tx/s", |s| {
            (s.commits_per_s + s.rollbacks_per_s).max(0.0) as u64
        }),
    ];
    let rows = Layout::vertical(series.iter().map(|_| Constraint::Length(1))).split(area);
    for ((label, value), row) in series.iter().zip(rows.iter()) {
        let [label_area, spark_area] =
            Layout::horizontal([Constraint::Length(6), Constraint::Min(0)]).areas(*row);
        // The newest samples that fit, oldest on the left.
        let width = spark_area.width as usize;
        let skip = app.metrics_history.len().saturating_sub(width);
        let data: Vec<u64> = app.metrics_history.iter().skip(skip).map(value).collect();
        frame.render_widget(Paragraph::new(*label), label_area);
        frame.render_widget(
            Sparkline::default()
                .data(&data)
                .style(styled(app, Style::default().fg(Color::Cyan))),
            spark_area,
        );
    }
}

fn bytes(count: i64) -> String {
    let value = count.max(0) as f64;
    match value {
        v if v >= 1024.0 * 1024.0 * 1024.0 => format!("{:.1} GiB", v / 1024.0 / 1024.0 / 1024.0),
        v if v >= 1024.0 * 1024.0 => format!("{:.1} MiB", v / 1024.0 / 1024.0),
        v => format!("{:.0} KiB", v / 1024.0),
    }
}

fn render_indexes(app: &App, frame: &mut Frame, area: Rect) {
    let problems = app
        .indexes
        .iter()
        .filter(|i| !matches!(i.state, IndexLiveState::Present { .. }))
        .count();
    let title = if app.indexes.is_empty() {
        " Indexes ".to_string()
    } else if problems == 0 {
        format!(" Indexes · all {} present ", app.indexes.len())
    } else {
        format!(" Indexes · {problems} of {} not ready ", app.indexes.len())
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let width = area.width.saturating_sub(2) as usize;
    // Problems first: on a short panel they are what must stay visible.
    let mut statuses: Vec<_> = app.indexes.iter().collect();
    statuses.sort_by_key(|s| matches!(s.state, IndexLiveState::Present { .. }));
    let lines: Vec<Line> = statuses
        .iter()
        .flat_map(|status| {
            let (mark, state, color) = match &status.state {
                IndexLiveState::Present { .. } => ("✓", String::new(), Color::Green),
                IndexLiveState::Missing => ("✗", "MISSING".to_string(), Color::Red),
                IndexLiveState::Invalid { .. } => ("✗", "INVALID".to_string(), Color::Red),
                IndexLiveState::NotUnique { .. } => ("✗", "NOT UNIQUE".to_string(), Color::Red),
                IndexLiveState::Building { percent, phase, .. } => {
                    ("…", format!("{percent:.0}% {phase}"), Color::Yellow)
                }
            };
            let name = status.expected.describe();
            let mark = Span::styled(format!("{mark} "), styled(app, Style::default().fg(color)));
            let state_style = styled(app, Style::default().fg(color));
            // A long state (a build's phase) goes on a line of its own under the name.
            if state.chars().count() > 12 {
                return vec![
                    Line::from(vec![
                        mark,
                        Span::raw(truncate(&name, width.saturating_sub(2))),
                    ]),
                    Line::styled(
                        format!("  {}", truncate(&state, width.saturating_sub(2))),
                        state_style,
                    ),
                ];
            }
            let room = width.saturating_sub(state.chars().count() + 3);
            vec![Line::from(vec![
                mark,
                Span::raw(format!("{:<room$} ", truncate(&name, room))),
                Span::styled(state, state_style),
            ])]
        })
        .collect();
    let body = if lines.is_empty() {
        vec![Line::from("waiting for the first sample…")]
    } else {
        lines
    };
    frame.render_widget(Paragraph::new(body).block(block), area);
}
