//! The live panels: metrics and index status.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::tui::app::App;

/// Paints the live panels into `area`.
pub fn render(_app: &App, frame: &mut Frame, area: Rect) {
    let block = Block::default().borders(Borders::ALL).title(" Live ");
    frame.render_widget(
        Paragraph::new("waiting for the first sample…").block(block),
        area,
    );
}
