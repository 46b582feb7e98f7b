//! Man pages made from a program's `--help` text, so that the page and the help cannot drift:
//! `host-sim --help-man` and `aoe --help-man` print [`render`]'s output, and the Debian package
//! ships exactly that.
//!
//! The help text follows a few layout rules, which every program of this repository keeps:
//!
//! * `usage: NAME ...` starts the synopsis; lines that continue it are indented, and further
//!   forms start with `NAME` after spaces (`       NAME --config FILE`).
//! * A line of its own ending in `:` (`options:`, or indented, `  bench:`) is a heading.
//! * A definition is a line indented by two spaces, a term, two or more spaces and its text;
//!   lines indented deeper than the term continue the text. A term alone on its line is a
//!   definition without text.
//! * Anything else is running text; a blank line ends a paragraph.
//!
//! Guarantees: [`render`] never panics and keeps every word of the help text, in order (roff
//! escapes aside; [`words_of_roff`] undoes them), so a test can prove that a page says exactly
//! what `--help` says; every line it emits that starts with `.` or `'` is a request of the
//! `man` macro package, never text that happened to start with a dot.

/// What a page needs besides the help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page<'a> {
    /// The program's name, e.g. `host-sim`.
    pub name: &'a str,
    /// The manual section, e.g. `8`.
    pub section: &'a str,
    /// The one-line description of the NAME section.
    pub summary: &'a str,
    /// The version for the footer, e.g. `vblade-rs 0.1.0`.
    pub source: &'a str,
    /// The footer's middle, e.g. `System Administration`.
    pub manual: &'a str,
}

/// One structural piece of a help text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Synopsis(Vec<String>),
    /// A heading; `true` for an indented (sub-section) one.
    Heading(String, bool),
    Definition {
        term: String,
        text: Vec<String>,
    },
    Paragraph(Vec<String>),
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Splits `line` (indented by two) into term and text at the first run of two or more spaces.
fn split_definition(line: &str) -> Option<(String, String)> {
    let body = line.strip_prefix("  ")?;
    if body.starts_with(' ') || body.is_empty() {
        return None;
    }
    match body.find("  ") {
        Some(at) => Some((
            body[..at].trim_end().to_owned(),
            body[at..].trim().to_owned(),
        )),
        None => Some((body.trim_end().to_owned(), String::new())),
    }
}

fn parse(help: &str, name: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut in_synopsis = false;
    for line in help.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            in_synopsis = false;
            // A blank line ends a paragraph; the next text starts a new one.
            if matches!(blocks.last(), Some(Block::Paragraph(_))) {
                blocks.push(Block::Heading(String::new(), false));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("usage: ") {
            in_synopsis = true;
            blocks.push(Block::Synopsis(vec![rest.trim().to_owned()]));
            continue;
        }
        if in_synopsis && indent_of(line) > 0 {
            if let Some(Block::Synopsis(lines)) = blocks.last_mut() {
                if trimmed.starts_with(name) {
                    lines.push(trimmed.to_owned());
                } else if let Some(last) = lines.last_mut() {
                    last.push(' ');
                    last.push_str(trimmed);
                }
            }
            continue;
        }
        in_synopsis = false;
        if trimmed.ends_with(':') && indent_of(line) <= 2 && !trimmed.contains("  ") {
            let title = trimmed.trim_end_matches(':').to_owned();
            blocks.push(Block::Heading(title, indent_of(line) > 0));
            continue;
        }
        if indent_of(line) == 2
            && let Some((term, text)) = split_definition(line)
        {
            let text = if text.is_empty() { vec![] } else { vec![text] };
            blocks.push(Block::Definition { term, text });
            continue;
        }
        if indent_of(line) > 2
            && let Some(Block::Definition { text, .. }) = blocks.last_mut()
        {
            text.push(trimmed.to_owned());
            continue;
        }
        match blocks.last_mut() {
            Some(Block::Paragraph(lines)) => lines.push(trimmed.to_owned()),
            _ => blocks.push(Block::Paragraph(vec![trimmed.to_owned()])),
        }
    }
    // The markers of paragraph ends are not headings.
    blocks.retain(|block| !matches!(block, Block::Heading(title, _) if title.is_empty()));
    blocks
}

/// Escapes running text for roff: backslashes, hyphens (so that `--help` copies as typed), and
/// a leading dot or apostrophe (which roff would take for a request).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c => out.push(c),
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// The man page (roff, `man` macros) of a program whose `--help` prints `help`.
pub fn render(page: &Page<'_>, help: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        ".\\\" Generated by `{} --help-man` from its --help text; do not edit.\n",
        page.name
    ));
    out.push_str(&format!(
        ".TH {} {} \"\" \"{}\" \"{}\"\n",
        page.name.to_uppercase(),
        page.section,
        page.source,
        page.manual
    ));
    out.push_str(".SH NAME\n");
    out.push_str(&format!(
        "{} \\- {}\n",
        escape(page.name),
        escape(page.summary)
    ));
    let mut section_open = false;
    for block in parse(help, page.name) {
        match block {
            Block::Synopsis(lines) => {
                out.push_str(".SH SYNOPSIS\n");
                for line in lines {
                    out.push_str(".nf\n");
                    out.push_str(&escape(&line));
                    out.push_str("\n.fi\n");
                }
                section_open = false;
            }
            Block::Heading(title, indented) => {
                if indented {
                    out.push_str(&format!(".SS {}\n", escape(&title)));
                } else {
                    out.push_str(&format!(".SH {}\n", escape(&title.to_uppercase())));
                    section_open = true;
                }
            }
            Block::Definition { term, text } => {
                out.push_str(".TP\n");
                out.push_str(&format!(".B {}\n", escape(&term)));
                for line in text {
                    out.push_str(&escape(&line));
                    out.push('\n');
                }
            }
            Block::Paragraph(lines) => {
                if !section_open {
                    out.push_str(".SH DESCRIPTION\n");
                    section_open = true;
                } else {
                    out.push_str(".PP\n");
                }
                for line in lines {
                    out.push_str(&escape(&line));
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// The words of a roff page as a reader sees them: requests dropped (their arguments kept),
/// escapes undone. For tests that compare a page with the help text it came from.
pub fn words_of_roff(roff: &str) -> Vec<String> {
    let mut words = Vec::new();
    for line in roff.lines() {
        if line.starts_with(".\\\"") {
            continue;
        }
        let text = match line.strip_prefix('.') {
            Some(request) => match request.split_once(' ') {
                Some((_, arguments)) => arguments,
                None => continue,
            },
            None => line,
        };
        let plain = text
            .replace("\\&", "")
            .replace("\\-", "-")
            .replace("\\e", "\\");
        words.extend(plain.split_whitespace().map(str::to_owned));
    }
    words
}

/// The words of a help text, in order, without the `usage:` label (the page's SYNOPSIS
/// heading stands for it) and with the colon of headings dropped.
pub fn words_of_help(help: &str) -> Vec<String> {
    help.lines()
        .flat_map(|line| {
            let line = line.strip_prefix("usage: ").unwrap_or(line);
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Checks that every word of `help` is on the page `roff`, in order (headings may change
/// case; the `usage:` label is the SYNOPSIS heading). `Err` names the first word missing.
///
/// # Errors
/// The first help word not found, and where the search was.
pub fn check_page(help: &str, roff: &str) -> Result<(), String> {
    let page = words_of_roff(roff);
    let normal = |word: &str| word.trim_end_matches(':').to_owned();
    let mut at = 0;
    for word in words_of_help(help) {
        let word = normal(&word);
        let found = page[at..].iter().position(|w| {
            let w = normal(w);
            w == word || (w.len() > 1 && w.eq_ignore_ascii_case(&word) && w == w.to_uppercase())
        });
        match found {
            Some(offset) => at += offset + 1,
            None => {
                let context = page[at.saturating_sub(3)..(at + 3).min(page.len())].join(" ");
                return Err(format!(
                    "{word:?} of the help is not on the page after word {at} ({context:?})"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    const HELP: &str = "\
usage: tool [-a] [-b N]
            [--long] FILE
       tool --help

Does things to FILE. A second
line of the same paragraph.

  -a          a flag
  -b N        a number, with a text
              that continues here
  --help

options:
  .dot        a term that starts with a dot
  bench:
  --mode M    back\\slash and -dash

Last words.
";

    fn page() -> Page<'static> {
        Page {
            name: "tool",
            section: "8",
            summary: "does things",
            source: "vblade-rs 0.1.0",
            manual: "System Administration",
        }
    }

    #[test]
    fn every_word_of_the_help_is_on_the_page_in_order() {
        let roff = render(&page(), HELP);
        check_page(HELP, &roff).unwrap();
        // A page that lost a word fails the check.
        let lost = roff.replace("that continues here", "that here");
        assert!(
            check_page(HELP, &lost)
                .unwrap_err()
                .contains("\"continues\"")
        );
    }

    #[test]
    fn structure_becomes_man_macros() {
        let roff = render(&page(), HELP);
        assert!(
            roff.contains(".TH TOOL 8 \"\" \"vblade-rs 0.1.0\""),
            "{roff}"
        );
        assert!(roff.contains(".SH NAME\ntool \\- does things\n"), "{roff}");
        assert!(
            roff.contains(".SH SYNOPSIS\n.nf\ntool [\\-a] [\\-b N] [\\-\\-long] FILE\n.fi\n"),
            "{roff}"
        );
        assert!(roff.contains(".nf\ntool \\-\\-help\n.fi\n"), "{roff}");
        assert!(
            roff.contains(".SH DESCRIPTION\nDoes things to FILE. A second\n"),
            "{roff}"
        );
        assert!(
            roff.contains(".TP\n.B \\-b N\na number, with a text\nthat continues here\n"),
            "{roff}"
        );
        assert!(roff.contains(".TP\n.B \\-\\-help\n.SH OPTIONS\n"), "{roff}");
        assert!(roff.contains(".B \\&.dot\n"), "{roff}");
        assert!(roff.contains(".SS bench\n"), "{roff}");
        assert!(roff.contains("back\\eslash and \\-dash"), "{roff}");
        assert!(roff.contains(".PP\nLast words.\n"), "{roff}");
        for line in roff
            .lines()
            .filter(|l| l.starts_with('.') || l.starts_with('\''))
        {
            let request = line[1..].split(' ').next().unwrap_or("");
            assert!(
                ["\\\"", "TH", "SH", "SS", "TP", "B", "PP", "nf", "fi"].contains(&request),
                "not a man request: {line:?}"
            );
        }
    }
}
