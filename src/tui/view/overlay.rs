//! Dialogs over the screen: help (made from the keymap), the quit question, text input.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::styled;
use crate::tui::app::{App, InputPurpose, Overlay};
use crate::tui::keymap::{Action, BINDINGS};

/// Paints the open dialog, if any, over `area`.
pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    match &app.overlay {
        None => {}
        Some(Overlay::Help) => help(app, frame, area),
        Some(Overlay::ConfirmQuit) => {
            let text = vec![
                Line::from("A step is still running. Quitting cancels it"),
                Line::from("(its processes are killed)."),
                Line::from(""),
                Line::from("Quit anyway?  y: yes   n / Esc: no"),
            ];
            let dialog = centered(area, 52, 6);
            frame.render_widget(Clear, dialog);
            frame.render_widget(
                Paragraph::new(text).block(bordered(app, " Quit? ", Color::Yellow)),
                dialog,
            );
        }
        Some(Overlay::Survivors { survivors }) => {
            let mut text = vec![Line::from(
                "Still running from the earlier session of this run (cutover was killed):",
            )];
            text.extend(survivors.iter().map(|survivor| {
                Line::from(format!(
                    "  • {}: pid {} `{}`",
                    survivor.step, survivor.pid, survivor.command
                ))
            }));
            text.push(Line::from(""));
            text.push(Line::from(
                "Enter: end them (TERM, then KILL)   Esc: leave them running",
            ));
            let block = bordered(app, " Processes left running ", Color::Red);
            lines_dialog(frame, area, 96, block, text);
        }
        Some(Overlay::RunDependencies {
            step,
            blockers,
            ids,
        }) => {
            let mut text = vec![Line::from(format!("{step} depends on:"))];
            text.extend(
                blockers
                    .iter()
                    .map(|blocker| Line::from(format!("  • {blocker}"))),
            );
            text.push(Line::from(""));
            text.push(Line::from(format!(
                "Enter: run {} first, then {step} (it starts only if they pass)",
                ids[..ids.len().saturating_sub(1)].join(", ")
            )));
            text.push(Line::from("Esc: cancel"));
            let block = bordered(app, " Run what it needs first? ", Color::Yellow);
            lines_dialog(frame, area, 84, block, text);
        }
        Some(Overlay::Input {
            purpose,
            field,
            error,
        }) => {
            let (title, prompt) = describe(app, purpose);
            let destructive = matches!(
                purpose,
                InputPurpose::ConfirmDestructive { .. } | InputPurpose::Approve { .. }
            );
            let width = area.width.saturating_sub(4).min(72);
            // Words wrap early: one spare line over the plain character count.
            let text_width = width.saturating_sub(2).max(1) as usize;
            let prompt_lines = prompt
                .split('\n')
                .map(|line| line.chars().count().div_ceil(text_width).max(1))
                .sum::<usize>() as u16
                + 1;
            // Borders (2), prompt, field (3), error (1), keys (1).
            let dialog = centered(area, width, prompt_lines + 7);
            frame.render_widget(Clear, dialog);
            let color = if destructive { Color::Red } else { Color::Cyan };
            let block = bordered(app, &title, color);
            let inner = block.inner(dialog);
            frame.render_widget(block, dialog);
            let [prompt_area, field_area, error_area, keys_area] = Layout::vertical([
                Constraint::Length(prompt_lines),
                Constraint::Length(3),
                Constraint::Length(1),
                Constraint::Length(1),
            ])
            .areas(inner);
            frame.render_widget(
                Paragraph::new(prompt).wrap(Wrap { trim: true }),
                prompt_area,
            );
            let mut field = field.as_ref().clone();
            field.set_block(Block::default().borders(Borders::ALL));
            field.set_cursor_line_style(Style::default());
            frame.render_widget(&field, field_area);
            if let Some(error) = error {
                frame.render_widget(
                    Paragraph::new(Span::styled(
                        error.clone(),
                        styled(app, Style::default().fg(Color::Red)),
                    )),
                    error_area,
                );
            }
            frame.render_widget(Paragraph::new("Enter: done   Esc: cancel"), keys_area);
        }
    }
}

fn describe(app: &App, purpose: &InputPurpose) -> (String, String) {
    let title_of = |id: &str| {
        app.runbook
            .step(id)
            .map(|s| s.title.clone())
            .unwrap_or_default()
    };
    let request_lines = |step: &str, request: &crate::approval::Request| {
        format!(
            "{step}: {}, run by {}, waits for your approval.\nTarget: {}\n{}\n(what it runs is in the step's output pane)",
            title_of(step),
            request.operator,
            request.target,
            request.action,
        )
    };
    match purpose {
        InputPurpose::Approve { step, request } => (
            " Approve a destructive step ".to_string(),
            format!(
                "{}\nType the database name, {}, to approve it (Esc: not now; then n to reject):",
                request_lines(step, request),
                request.database
            ),
        ),
        InputPurpose::RejectReason { step, request } => (
            " Reject a destructive step ".to_string(),
            format!(
                "{}\nWhy do you reject it? (the operator reads it)",
                request_lines(step, request)
            ),
        ),
        InputPurpose::TickNote { step } => (
            " Tick ".to_string(),
            format!(
                "{step}: {}. A note for the record (optional):",
                title_of(step)
            ),
        ),
        InputPurpose::SkipReason { step } => (
            " Skip ".to_string(),
            format!("{step}: {}. Why is it skipped?", title_of(step)),
        ),
        InputPurpose::SignOffName { step } => {
            let role = match app.runbook.step(step).map(|s| &s.action) {
                Some(crate::runbook::Action::Signoff { role }) => role.clone(),
                _ => String::new(),
            };
            (
                " Sign off ".to_string(),
                format!("{step}: sign as {role}. Your name:"),
            )
        }
        InputPurpose::VariableValue { name, step } => {
            let description = app
                .runbook
                .variables
                .get(name)
                .map(|v| v.description.clone())
                .unwrap_or_default();
            (
                format!(" {name} "),
                format!("{step} needs `{name}`: {description}"),
            )
        }
        InputPurpose::ConfirmDestructive {
            step,
            ids,
            warnings,
        } => (
            " Destructive step ".to_string(),
            format!(
                "{}{step}: {} changes the database.{} Type the database name, {}, to run it:",
                warnings
                    .iter()
                    .map(|w| format!("{w}. "))
                    .collect::<String>(),
                title_of(step),
                if ids.len() > 1 {
                    format!(
                        " It runs after {} and only if they pass.",
                        ids[..ids.len() - 1].join(", ")
                    )
                } else {
                    String::new()
                },
                app.database
            ),
        ),
    }
}

fn help(app: &App, frame: &mut Frame, area: Rect) {
    let bold = styled(app, Style::default().add_modifier(Modifier::BOLD));
    // The observer's keys are shown to an observer only.
    let observer_keys = [Action::Approve, Action::Reject];
    let mut lines: Vec<Line> = BINDINGS
        .iter()
        .filter(|binding| app.approving.is_some() || !observer_keys.contains(&binding.action))
        .map(|binding| {
            Line::from(vec![
                Span::styled(format!("{:>8}  ", binding.key_label), bold),
                Span::raw(binding.help),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(
        "✓ passed or ticked  ! warning  ✗ failed  E error",
    ));
    lines.push(Line::from(
        "- skipped  … running  ? interrupted  ○ not run yet",
    ));
    lines.push(Line::from("? or Esc closes this help."));
    let height = (lines.len() as u16 + 2).min(area.height);
    let dialog = centered(area, area.width.saturating_sub(4).min(84), height);
    frame.render_widget(Clear, dialog);
    frame.render_widget(
        Paragraph::new(lines)
            .block(bordered(app, " Keys ", Color::Cyan))
            .wrap(Wrap { trim: false }),
        dialog,
    );
}

/// A dialog of wrapped lines, at most `max_width` wide, with two spare rows for the lines
/// that wrap.
fn lines_dialog(frame: &mut Frame, area: Rect, max_width: u16, block: Block, text: Vec<Line>) {
    let width = area.width.saturating_sub(4).min(max_width);
    let height = (text.len() as u16 + 4).min(area.height);
    let dialog = centered(area, width, height);
    frame.render_widget(Clear, dialog);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(block),
        dialog,
    );
}

fn bordered(app: &App, title: &str, color: Color) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .title(title.to_string())
        .border_style(styled(app, Style::default().fg(color)))
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}
