//! Drawing: `render` reads the state and paints a frame; it changes nothing.

mod overlay;
mod panels;
mod section;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, Paragraph, Wrap};

use super::app::{App, Connection, RunMode, Screen, StepState, StepStatus};
use super::keymap;
use crate::monitor::AlertLevel;
use crate::outcome::Status;

/// Below this the wizard only asks for a bigger terminal.
pub const MIN_WIDTH: u16 = 60;
/// Below this the wizard only asks for a bigger terminal.
pub const MIN_HEIGHT: u16 = 16;
/// From this width on, the sidebar is shown.
const SIDEBAR_FROM: u16 = 80;
/// From this width on, the live panels are always shown beside the section.
const PANELS_FROM: u16 = 120;

/// Paints the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area);
        return;
    }
    let [header, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(app, frame, header);
    render_status_bar(app, frame, status);

    let wide = area.width >= PANELS_FROM;
    let mut columns = vec![];
    if area.width >= SIDEBAR_FROM {
        columns.push(Constraint::Length(24));
    }
    columns.push(Constraint::Min(30));
    if wide {
        columns.push(Constraint::Length(40));
    }
    let areas = Layout::horizontal(columns).split(body);
    let mut next = 0;
    if area.width >= SIDEBAR_FROM {
        render_sidebar(app, frame, areas[0]);
        next = 1;
    }
    let main = areas[next];
    if wide {
        panels::render(app, frame, areas[next + 1]);
    }
    if !wide && app.panels_open {
        panels::render(app, frame, main);
    } else {
        match app.screen {
            Screen::Overview => render_overview(app, frame, main),
            Screen::Section(_) => section::render(app, frame, main),
        }
    }
    overlay::render(app, frame, area);
}

/// Paints with colour only when the user did not ask for none (`NO_COLOR`).
pub(crate) fn styled(app: &App, style: Style) -> Style {
    if app.color {
        style
    } else {
        Style::default().add_modifier(style.add_modifier)
    }
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = format!(
        "Terminal too small: {}x{}. cutover needs at least {MIN_WIDTH}x{MIN_HEIGHT}. Enlarge the window, or press q to quit.",
        area.width, area.height
    );
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
}

fn render_header(app: &App, frame: &mut Frame, area: Rect) {
    let (mode, mode_style) = match app.mode {
        RunMode::Rehearsal => ("REHEARSAL", Style::default().fg(Color::Cyan)),
        RunMode::Production => (
            "PRODUCTION",
            Style::default().fg(Color::White).bg(Color::Red),
        ),
    };
    let mode = if app.read_only.is_some() {
        format!("{mode} · WATCHING")
    } else {
        mode.to_string()
    };
    let (link, link_style) = match &app.connection {
        Connection::Connecting => (
            "… connecting".to_string(),
            Style::default().fg(Color::Yellow),
        ),
        Connection::Connected => ("● connected".to_string(), Style::default().fg(Color::Green)),
        Connection::Lost { error } => (
            format!("✗ not connected, retrying: {error}"),
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    };
    // What matters most comes first: a narrow terminal cuts the end.
    let line = Line::from(vec![
        Span::styled(
            " cutover ",
            styled(app, Style::default().add_modifier(Modifier::BOLD)),
        ),
        Span::styled(
            format!(" {mode} "),
            styled(app, mode_style.add_modifier(Modifier::BOLD)),
        ),
        Span::raw(match &app.read_only {
            Some(holder) => format!(" {holder} · "),
            None => " ".to_string(),
        }),
        Span::styled(link, styled(app, link_style)),
        alert_badge(app),
        Span::raw(" · "),
        Span::raw(app.target.clone()),
        Span::raw(" · "),
        Span::raw(app.runbook.name.clone()),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

/// " ! 2 alerts" in the alert's colour, or nothing.
fn alert_badge(app: &App) -> Span<'static> {
    let Some(worst) = app.alerts.iter().map(|a| a.level).max() else {
        return Span::raw("");
    };
    let color = match worst {
        AlertLevel::Critical => Color::Red,
        AlertLevel::Warning => Color::Yellow,
    };
    Span::styled(
        format!(
            " ! {} alert{}",
            app.alerts.len(),
            if app.alerts.len() == 1 { "" } else { "s" }
        ),
        styled(app, Style::default().fg(color).add_modifier(Modifier::BOLD)),
    )
}

fn render_status_bar(app: &App, frame: &mut Frame, area: Rect) {
    let key_style = styled(app, Style::default().fg(Color::Black).bg(Color::Gray));
    let mut spans = vec![];
    if let Some(notice) = &app.notice {
        spans.push(Span::styled(
            format!(" {notice} "),
            styled(app, Style::default().add_modifier(Modifier::BOLD)),
        ));
        spans.push(Span::raw("│"));
    }
    for (key, label) in keymap::status_bar() {
        spans.push(Span::styled(format!(" {key} "), key_style));
        spans.push(Span::raw(format!(" {label} ")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn render_sidebar(app: &App, frame: &mut Frame, area: Rect) {
    let items: Vec<ListItem> = app
        .runbook
        .sections
        .iter()
        .enumerate()
        .map(|(index, section)| {
            let (done, total, failed) = app.progress(index);
            let mark = if failed > 0 {
                "✗"
            } else if done == total {
                "✓"
            } else {
                " "
            };
            let current = app.screen == Screen::Section(index)
                || (app.screen == Screen::Overview && app.section == index);
            let style = if current {
                styled(app, Style::default().add_modifier(Modifier::REVERSED))
            } else if failed > 0 {
                styled(app, Style::default().fg(Color::Red))
            } else {
                Style::default()
            };
            ListItem::new(Line::from(format!(
                "{mark} {:<13}{:>3}/{:<3}",
                truncate(&section.id, 13),
                done,
                total
            )))
            .style(style)
        })
        .collect();
    let block = Block::default().borders(Borders::RIGHT).title(" Sections ");
    frame.render_widget(List::new(items).block(block), area);
}

fn render_overview(app: &App, frame: &mut Frame, area: Rect) {
    let mut lines = vec![
        Line::from(Span::styled(
            app.runbook.name.clone(),
            styled(app, Style::default().add_modifier(Modifier::BOLD)),
        )),
        Line::from(format!("Target: {}", app.target)),
        Line::from(""),
    ];
    for (index, section) in app.runbook.sections.iter().enumerate() {
        let (done, total, failed) = app.progress(index);
        let selected = app.section == index;
        let pointer = if selected { "▶" } else { " " };
        let failures = if failed > 0 {
            format!("  ✗ {failed} failed")
        } else {
            String::new()
        };
        let style = if selected {
            styled(app, Style::default().add_modifier(Modifier::REVERSED))
        } else if failed > 0 {
            styled(app, Style::default().fg(Color::Red))
        } else {
            Style::default()
        };
        lines.push(Line::styled(
            format!(
                "{pointer} {:<28} {} {done:>2}/{total:<2}{failures}",
                truncate(&section.title, 28),
                bar(done, total, 10)
            ),
            style,
        ));
    }
    let failed: Vec<String> = app
        .runbook
        .steps()
        .filter(|step| app.state(&step.id).is_some_and(StepState::is_failed))
        .map(|step| format!("  ✗ {} — {}", step.id, step.title))
        .collect();
    if !failed.is_empty() {
        lines.push(Line::from(""));
        lines.push(Line::from("Failed:"));
        lines.extend(failed.into_iter().map(Line::from));
    }
    lines.push(Line::from(""));
    lines.push(Line::from("Enter opens the section · ? lists every key"));
    let block = Block::default().borders(Borders::ALL).title(" Overview ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width).checked_div(total).unwrap_or(0);
    format!("[{}{}]", "█".repeat(filled), "·".repeat(width - filled))
}

/// Cuts `text` to `width` characters, marking the cut with an ellipsis.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The glyph and colour of a step's state (the glyph carries it without colour).
pub(crate) fn glyph(state: Option<&StepState>) -> (&'static str, Style) {
    let Some(state) = state else {
        return ("?", Style::default());
    };
    match &state.status {
        StepStatus::Pending => ("○", Style::default().fg(Color::DarkGray)),
        StepStatus::Running { .. } => ("…", Style::default().fg(Color::Yellow)),
        StepStatus::Interrupted => ("?", Style::default().fg(Color::Magenta)),
        StepStatus::Ticked { .. } | StepStatus::Signed { .. } => {
            ("✓", Style::default().fg(Color::Green))
        }
        StepStatus::Skipped { .. } => ("-", Style::default().fg(Color::DarkGray)),
        StepStatus::Finished(outcome) => (
            outcome.status.symbol(),
            Style::default().fg(match outcome.status {
                Status::Pass => Color::Green,
                Status::Warn => Color::Yellow,
                Status::Skip => Color::DarkGray,
                Status::Fail => Color::Red,
                Status::Error => Color::Magenta,
            }),
        ),
    }
}
