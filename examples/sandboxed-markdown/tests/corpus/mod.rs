//! The corpus the tests and the bench use: the 652 examples of the CommonMark spec
//! (`tests/commonmark/spec.txt`, CC BY-SA 4.0, see the README next to it).

/// One example of the spec.
#[allow(dead_code)] // the bench reads only the input
pub struct Example {
    /// Its number in the spec, from 1.
    pub number: usize,
    /// Its Markdown.
    pub markdown: String,
    /// The HTML the spec expects.
    pub html: String,
}

const SPEC: &str = include_str!("../commonmark/spec.txt");

/// Every example of the spec, in order, with `→` turned back into the tab it stands for.
pub fn examples() -> Vec<Example> {
    let fence = "````````````````````````````````";
    let open = format!("{fence} example");
    let mut examples = Vec::new();
    let mut lines = SPEC.lines();
    while let Some(line) = lines.next() {
        if line != open {
            continue;
        }
        let (mut markdown, mut html) = (String::new(), String::new());
        let mut in_html = false;
        for line in lines.by_ref() {
            match line {
                l if l == fence => break,
                "." if !in_html => in_html = true,
                l => {
                    let part = if in_html { &mut html } else { &mut markdown };
                    part.push_str(&l.replace('→', "\t"));
                    part.push('\n');
                }
            }
        }
        examples.push(Example {
            number: examples.len() + 1,
            markdown,
            html,
        });
    }
    examples
}

/// What native pulldown-cmark renders: the guest's `render`, outside the sandbox.
pub fn native(markdown: &str) -> String {
    let mut html = String::with_capacity(markdown.len() + markdown.len() / 2);
    pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new(markdown));
    html
}
