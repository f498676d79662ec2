//! The sandboxed library against native pulldown-cmark (the same version, the same
//! options) on the CommonMark spec's examples, and hostile documents that stay contained.

mod corpus;

use atoll::Error;
use sandboxed_markdown::{MEMORY_LIMIT, render, render_async};

#[test]
fn every_commonmark_spec_example_renders_exactly_as_native() {
    let examples = corpus::examples();
    assert_eq!(examples.len(), 652, "CommonMark 0.31.2 has 652 examples");
    let mut differ = Vec::new();
    let mut as_spec = 0;
    for ex in &examples {
        let sandboxed = render(&ex.markdown).expect("renders");
        let native = corpus::native(&ex.markdown);
        if sandboxed != native {
            differ.push(format!(
                "example {}: {:?}\n  sandboxed {sandboxed:?}\n  native    {native:?}",
                ex.number, ex.markdown
            ));
        }
        as_spec += usize::from(native == ex.html);
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // Not the point here (pulldown-cmark's own suite normalizes HTML before it compares),
    // but a parser that renders most examples exactly as the spec says is a sign the
    // corpus was read right.
    assert!(
        as_spec > 600,
        "only {as_spec} examples match the spec's HTML byte for byte"
    );
}

#[test]
fn the_whole_spec_as_one_document_renders_exactly_as_native() {
    let spec = include_str!("commonmark/spec.txt");
    assert_eq!(render(spec).expect("renders"), corpus::native(spec));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_async_matches_native_from_many_tasks() {
    let examples = corpus::examples();
    let tasks: Vec<_> = examples
        .into_iter()
        .step_by(13)
        .map(|ex| {
            tokio::spawn(async move {
                let html = render_async(&ex.markdown).await.expect("renders");
                (html, corpus::native(&ex.markdown), ex.number)
            })
        })
        .collect();
    for task in tasks {
        let (sandboxed, native, number) = task.await.expect("task");
        assert_eq!(sandboxed, native, "example {number}");
    }
}

#[test]
fn a_document_larger_than_the_memory_limit_is_refused_and_the_next_call_works() {
    let huge = "word ".repeat(usize::try_from(MEMORY_LIMIT).expect("fits") / 4);
    let e = render(&huge).expect_err("80 MiB cannot fit in 64 MiB");
    assert!(
        matches!(e, Error::Memory { limit, .. } if limit == MEMORY_LIMIT),
        "{e:?}"
    );
    assert_eq!(render("*ok*").expect("after"), "<p><em>ok</em></p>\n");
}

#[test]
fn a_document_whose_html_outgrows_the_memory_limit_is_refused_too() {
    // 4 MiB in: the input fits many times over, but pulldown-cmark's tree takes tens of
    // bytes per `<` and the HTML four (`&lt;`).
    let input = "<".repeat(4 << 20);
    let e = render(&input).expect_err("the work does not fit");
    assert!(
        matches!(e, Error::Memory { limit, .. } if limit == MEMORY_LIMIT),
        "{e:?}"
    );
    // Smaller, the same kind of document renders as natively.
    let input = "<".repeat(256 << 10);
    assert_eq!(render(&input).expect("256 KiB"), corpus::native(&input));
}

#[test]
fn deeply_nested_documents_render_as_native_or_hit_the_limit_and_the_host_carries_on() {
    // pulldown-cmark keeps nesting on its own stack, not the call stack: deep block
    // quotes and lists render; deep inline nesting costs it tens of bytes per
    // delimiter, past the memory limit here. Either way the process carries on.
    for (what, doc, fits) in [
        ("200 000 block quotes", ">".repeat(200_000), true),
        ("100 000 list items", "- ".repeat(100_000) + "x", true),
        (
            "500 000 brackets",
            "[".repeat(500_000) + &"]".repeat(500_000),
            false,
        ),
        (
            "200 000 emphases",
            "*a ".repeat(200_000) + &" a*".repeat(200_000),
            false,
        ),
    ] {
        match render(&doc) {
            Ok(html) => {
                assert!(fits, "{what}: rendered, expected the memory limit");
                assert_eq!(html, corpus::native(&doc), "{what}");
            }
            Err(e) => assert!(
                !fits && matches!(e, Error::Memory { limit, .. } if limit == MEMORY_LIMIT),
                "{what}: {e:?}"
            ),
        }
        assert_eq!(render("# ok").expect("after"), "<h1>ok</h1>\n", "{what}");
    }
}

#[test]
fn the_blocking_call_refuses_to_stall_an_async_runtime() {
    let inside = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio")
        .block_on(async { render("x") });
    assert!(matches!(inside, Err(Error::Runtime(_))), "{inside:?}");
}
