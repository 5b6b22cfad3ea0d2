"""Main-text extraction rules: block lines, the container's climb, wrappers that hold an article, captions."""

from __future__ import annotations

from pagecat.etl.parse.extract import HtmlExtractor, block_text, collapse, lines_of
from pagecat.etl.parse.furniture import judge

SENTENCE = "The committee met on Tuesday, heard the reports, and voted on the budget for the coming year"


def test_block_elements_are_lines_and_inline_elements_are_not():
    html = ("<html><body><div><h2>Ti<b>tle</b></h2>Text after the heading, <a href='/x'>a link</a>, more."
            "<ul><li>one</li><li>two<br>three</li></ul><table><tr><td>Budget</td><td>120k</td></tr></table>"
            "tail\u00a0text\u200bhere</div></body></html>")
    from selectolax.lexbor import LexborHTMLParser

    body = LexborHTMLParser(html).body
    assert block_text(body).split("\n") == ["Title", "Text after the heading, a link, more.", "one", "two",
                                           "three", "Budget 120k", "tail text here"]
    assert lines_of(" a \n\t b \x00  \x00 c  d\x00") == "a b\nc d"
    assert collapse("  x \n y\u3000z ") == "x y z" and collapse("a\t\tb") == "a b"


def test_container_climbs_through_wrappers_that_add_no_paragraphs():
    # The best-scoring block (short paragraphs full of commas) holds under half of the post's text,
    # two wrappers deep; the wrappers hold no more paragraph text, so the climb passes through them
    # to the post, which holds the long paragraphs too.
    listy = "".join(f"<p>Point {i}: red, green, blue, cyan, teal, pink, gold, grey, plum, rust, sand.</p>"
                    for i in range(3))
    plain = SENTENCE.replace(",", "")
    prose = "".join(f"<p>Prose {i} {plain} {plain} {plain}</p>" for i in range(6))
    html = (f"<html><body><nav>{''.join(f'<a href=/n{i}>Nav {i}</a>' for i in range(20))}</nav>"
            f"<div class='col'><div class='w1'><div class='w2'><div class='part'>{listy}</div></div></div>"
            f"<div class='more'>{prose}</div></div><footer>Footer words here</footer></body></html>")
    text = HtmlExtractor().extract(html).text
    assert text.count("Point ") == 3 and text.count("Prose ") == 6
    assert "Nav 3" not in text and "Footer" not in text


def test_a_widget_wrapper_around_a_blog_post_is_kept():
    # Blogger themes wrap the post in <div class="widget Blog">: a furniture word, and under half of
    # a page whose menus are long. It holds an article body, so it stays; a real widget goes.
    menu = "".join(f"<li><a href='/c{i}'>Category number {i}</a></li>" for i in range(40))
    post = "<br>".join(f"Paragraph {i} of the post, {SENTENCE}." for i in range(4))
    html = (f"<html><body><div class='menu'><ul>{menu}</ul></div>"
            f"<div class='widget Blog' id='Blog1'><div class='blog-post hentry'><h1>Post title</h1>"
            f"<div class='post-body'>{post}</div></div></div>"
            f"<div class='widget PopularPosts'><p>Popular elsewhere: {SENTENCE}</p></div></body></html>")
    text = HtmlExtractor().extract(html).text
    assert "Post title" in text and text.count("Paragraph ") == 4
    assert "Category number" not in text and "Popular elsewhere" not in text


def test_hidden_element_with_article_markup_is_still_furniture():
    menu = "".join(f"<li><a href='/c{i}'>Category number {i}</a></li>" for i in range(40))
    article = f"<article><p>{SENTENCE}, seen once.</p><p>{SENTENCE}, again.</p><p>{SENTENCE}, third.</p></article>"
    html = (f"<html><body><ul class='menu'>{menu}</ul><div class='share-panel' style='display:none'>"
            f"<article><p>HIDDEN_COPY {SENTENCE}.</p></article></div>{article}</body></html>")
    text = HtmlExtractor().extract(html).text
    assert "seen once" in text and "HIDDEN_COPY" not in text


def test_captions_leave_the_main_text_but_not_the_full_text():
    paras = "".join(f"<p>Paragraph {i}: {SENTENCE}.</p>" for i in range(5))
    html = (f"<html><body><article>{paras[:200]}<figure><img src='a.jpg'><figcaption>Photo: CAPTION_CREDIT"
            f"</figcaption></figure>{paras}</article></body></html>")
    out = HtmlExtractor().extract(html)
    assert "Paragraph 4" in out.text and "CAPTION_CREDIT" not in out.text
    assert "Photo: CAPTION_CREDIT" in out.full_text


def test_furniture_words_roles_and_numbered_values():
    assert judge("div", {"class": "sidebar-left"}) and judge("div", {"id": "comment-1234"})
    assert judge("div", {"class": "ad2"}) and judge("div", {"role": "navigation"})
    assert judge("div", {"style": "display: none"}) and judge("nav", {})
    assert not judge("div", {"class": "article-body pagination-first"})  # a content word wins
    assert not judge("div", {"class": "story", "id": "main-2"}) and not judge("header", {})
