//! pulldown-cmark as a component: `render` is `pulldown_cmark::html::push_html` over
//! `Parser::new` (CommonMark, no extensions), nothing else. It imports nothing beyond
//! what Rust's standard library links in for wasm32-wasip2, and the host grants none of it.

mod bindings {
    wit_bindgen::generate!({ path: "../wit", world: "acme:markdown/markdown" });
}

struct Markdown;

impl bindings::Guest for Markdown {
    fn render(markdown: String) -> String {
        let parser = pulldown_cmark::Parser::new(&markdown);
        // HTML is usually a little longer than its source.
        let mut html = String::with_capacity(markdown.len() + markdown.len() / 2);
        pulldown_cmark::html::push_html(&mut html, parser);
        html
    }
}

bindings::export!(Markdown with_types_in bindings);
