//! A section's screen: its steps, the selected step's detail, and its output.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};

use super::{glyph, styled, truncate};
use crate::engine::OutputStream;
use crate::runbook::{Action, Step};
use crate::target::redact_url;
use crate::tui::app::{App, Pane, Screen, StepStatus};

/// Paints the section screen into `area`.
pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let Screen::Section(index) = app.screen else {
        return;
    };
    let Some(section) = app.runbook.sections.get(index) else {
        return;
    };
    let list_height = (section.steps.len() as u16 + 2).min(area.height / 2).max(4);
    // Output is for steps that print: shell steps, or any step that printed something.
    let prints = app.selected_step().is_some_and(|step| {
        matches!(step.action, Action::Shell(_) | Action::Migrate(_))
            || app.state(&step.id).is_some_and(|s| !s.output.is_empty())
    });
    let output_share = if prints { 35 } else { 0 };
    let [list_area, detail_area, output_area] = Layout::vertical([
        Constraint::Length(list_height),
        Constraint::Min(4),
        Constraint::Percentage(output_share),
    ])
    .areas(area);
    render_steps(app, frame, list_area, &section.title, &section.steps);
    if let Some(step) = app.selected_step() {
        render_detail(app, frame, detail_area, step);
        render_output(app, frame, output_area, step);
    }
}

fn render_steps(app: &App, frame: &mut Frame, area: Rect, title: &str, steps: &[Step]) {
    let width = area.width.saturating_sub(2) as usize;
    let items: Vec<ListItem> = steps
        .iter()
        .map(|step| {
            let state = app.state(&step.id);
            let (symbol, style) = glyph(state);
            let short = step.id.rsplit('.').next().unwrap_or(&step.id);
            let mut duration = match state.map(|s| (&s.status, s.duration)) {
                Some((StepStatus::Running { since }, _))
                    if state.is_some_and(|s| s.awaiting.is_some()) =>
                {
                    format!("awaits approval {:.0}s", since.elapsed().as_secs_f64())
                }
                Some((StepStatus::Running { since }, _)) => {
                    format!("{:.0}s", since.elapsed().as_secs_f64())
                }
                Some((_, Some(duration))) => format_duration(duration),
                _ => String::new(),
            };
            if let Some(rehearsed) = app.rehearsal.get(&step.id) {
                // What the rehearsal took: what to expect of this run.
                duration = if duration.is_empty() {
                    format!("~{}", format_duration(*rehearsed))
                } else {
                    format!("{duration} (~{})", format_duration(*rehearsed))
                };
            }
            let left = format!(" {symbol} {:<18} ", truncate(short, 18));
            let room = width.saturating_sub(left.chars().count() + duration.len() + 1);
            Line::from(vec![
                Span::styled(left, styled(app, style)),
                Span::raw(format!("{:<room$}", truncate(&step.title, room))),
                Span::raw(format!(" {duration}")),
            ])
            .into()
        })
        .collect();
    let focused = app.pane == Pane::Steps;
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {title} "))
        .border_style(border(app, focused));
    let list = List::new(items).block(block).highlight_style(styled(
        app,
        Style::default().add_modifier(Modifier::REVERSED),
    ));
    let mut state = ListState::default().with_selected(Some(app.selected));
    frame.render_stateful_widget(list, area, &mut state);
}

fn border(app: &App, focused: bool) -> Style {
    if focused {
        styled(app, Style::default().fg(Color::Cyan))
    } else {
        Style::default()
    }
}

fn format_duration(duration: std::time::Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

fn render_detail(app: &App, frame: &mut Frame, area: Rect, step: &Step) {
    let bold = styled(app, Style::default().add_modifier(Modifier::BOLD));
    let rehearsal = app
        .rehearsal
        .get(&step.id)
        .map(|d| format!(" · took {} in rehearsal", format_duration(*d)))
        .unwrap_or_default();
    let mut lines = vec![Line::from(vec![
        Span::styled(step.title.clone(), bold),
        Span::raw(format!(
            "  [{} · {}{rehearsal}]",
            step.kind().as_str(),
            format!("{:?}", step.severity).to_lowercase()
        )),
    ])];
    if let Some(state) = app.state(&step.id) {
        let (symbol, style) = glyph(Some(state));
        let result = match &state.status {
            StepStatus::Pending => "not run yet".to_string(),
            StepStatus::Running { .. } if state.awaiting.is_some() => {
                "waiting for a second person's approval…".to_string()
            }
            StepStatus::Running { .. } => "running…".to_string(),
            StepStatus::Interrupted => {
                "interrupted: outcome unknown (it was running when the last session ended); check by hand, then re-run, tick or skip it".to_string()
            }
            StepStatus::Finished(outcome) => {
                format!("{} — {}", outcome.status.as_str(), outcome.message)
            }
            StepStatus::Ticked { note } if note.is_empty() => "ticked".to_string(),
            StepStatus::Ticked { note } => format!("ticked — {note}"),
            StepStatus::Skipped { reason } => format!("skipped — {reason}"),
            StepStatus::Signed { name, at } => format!("signed by {name} at {at}"),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{symbol} "), styled(app, style)),
            Span::styled(result, styled(app, style)),
        ]));
        if let StepStatus::Finished(outcome) = &state.status {
            lines.extend(outcome.details.iter().map(|d| Line::from(format!("  {d}"))));
        }
    }
    lines.push(Line::from(""));
    lines.extend(reflow(&step.help).into_iter().map(Line::from));
    if let Some(what) = what_runs(step) {
        lines.push(Line::from(""));
        lines.extend(
            what.lines().map(|l| {
                Line::styled(l.to_string(), styled(app, Style::default().fg(Color::Cyan)))
            }),
        );
    }
    let block = Block::default().borders(Borders::ALL).title(" Step ");
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// Joins the hard-wrapped lines of each paragraph, so the pane's own wrapping reads well.
fn reflow(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|paragraph| !paragraph.is_empty())
        .collect()
}

/// The SQL, command or URL a step runs, password redacted.
fn what_runs(step: &Step) -> Option<String> {
    let text = match &step.action {
        Action::Sql { query, .. } => query.clone(),
        Action::Shell(shell) => format!("$ {}", shell.command.trim()),
        Action::Http(http) => format!("{} {}", http.method, http.url),
        Action::Probe { probe, .. } => format!("built-in probe: {probe}"),
        Action::Migrate(migrate) => {
            let name = migrate
                .migration
                .as_deref()
                .map(|name| format!(" {name}"))
                .unwrap_or_default();
            format!(
                "built-in: {}{name} --migrations {} (native, no Node)",
                migrate.op.command(),
                migrate.migrations
            )
        }
        Action::Signoff { role } => format!("signed by: {role}"),
        Action::Manual => return None,
    };
    Some(redact_url(&text))
}

fn render_output(app: &App, frame: &mut Frame, area: Rect, step: &Step) {
    let Some(state) = app.state(&step.id) else {
        return;
    };
    if area.height == 0 {
        return;
    }
    let height = area.height.saturating_sub(2) as usize;
    let total = state.output.len();
    let scroll = app.output_scroll.min(total.saturating_sub(height));
    let end = total - scroll;
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = state
        .output
        .range(start..end)
        .map(|(stream, line)| match stream {
            OutputStream::Stdout => Line::from(line.clone()),
            OutputStream::Stderr => Line::styled(
                line.clone(),
                styled(app, Style::default().fg(Color::Yellow)),
            ),
        })
        .collect();
    let follow = if scroll == 0 {
        "following".to_string()
    } else {
        format!("{scroll} lines up · f follows")
    };
    let dropped = if state.output_dropped > 0 {
        format!(" · {} older lines dropped", state.output_dropped)
    } else {
        String::new()
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" Output · {total} lines · {follow}{dropped} "))
        .border_style(border(app, app.pane == Pane::Output));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
