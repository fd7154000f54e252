#!/usr/bin/env python3
"""The HTML report (`--format html`) stays inert and lists every message (issue 16, item 7).

usage: html_report.py WSTAP [CAPTURES_DIR]

For every capture in captures/ (with NAME.keys when there is one):
  - the page parses with only the report's own tags and attributes: no event handler attribute,
    no link but to its own sections, exactly one script (the report's own, whose hash is the
    page's Content-Security-Policy), no external resource;
  - every data message the capture holds (from `wstap read --format ndjson`) is a row, and its
    text is in the page as text (control characters shown as visible marks).
Then, in headless Chromium (Debian `chromium`), for the crafted captures/html-markup.pcap
(markup in the target, Host, a header and every payload): the DOM after the scripts ran still has
only the report's own elements, the title was not changed, every message is findable in the
page's text, and the search box (given through `#search=`) hides exactly the rows without the term.
"""
import base64, hashlib, html.parser, json, os, re, shutil, subprocess, sys, tempfile

WSTAP = sys.argv[1]
CAPTURES = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "captures")
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "input", "span", "ul", "li", "b",
                "code", "table", "thead", "tbody", "tr", "th", "td", "a", "section", "header", "small", "details",
                "summary", "pre", "i", "script", "label", "mark", "svg", "g", "rect", "circle", "line", "text"}
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL", message)


class Page(html.parser.HTMLParser):
    """The tags, attributes, script bodies and visible text of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attributes, self.scripts, self.text = [], [], [], []
        self.rows = []  # (classes, hidden, text) of each message row
        self._in_script = False
        self._row = None
        self._depth_in_row = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value) for name, value in attrs]
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        if tag == "tr" and "m" in (dict(attrs).get("class") or "").split():
            self._row = [dict(attrs).get("class"), "hidden" in dict(attrs), ""]
        elif self._row is not None and tag == "tr":
            pass

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if tag == "tr" and self._row is not None:
            self.rows.append(tuple(self._row))
            self._row = None

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
            return
        self.text.append(data)
        if self._row is not None:
            self._row[2] += data


def parse(markup):
    page = Page()
    page.feed(markup)
    page.close()
    return page


def visible(text):
    """How the report shows a message's text: controls as Control Pictures, invisible formatting as <U+XXXX>."""
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 and ch not in "\n\t":
            out.append(chr(0x2400 + code))
        elif code == 0x7F:
            out.append("\u2421")
        elif 0x80 <= code < 0xA0 or 0x200B <= code <= 0x200F or 0x202A <= code <= 0x202E or 0x2060 <= code <= 0x2069 or code == 0xFEFF:
            out.append("<U+%X>" % code)
        else:
            out.append(ch)
    return "".join(out)


def squeeze(text):
    return re.sub(r"\s+", "", text)


def check_page(name, page, messages):
    unexpected = sorted(set(page.tags) - ALLOWED_TAGS)
    check(not unexpected, f"{name}: tags that are not the report's own: {unexpected}")
    handlers = [(tag, attr) for tag, attr, _ in page.attributes if attr.lower().startswith("on")]
    check(not handlers, f"{name}: event handler attributes: {handlers}")
    links = [value for tag, attr, value in page.attributes if attr in ("href", "src", "action", "formaction")]
    check(all(re.fullmatch(r"#conn-\d+", value or "") for value in links), f"{name}: links not to the report's own sections: {links}")
    check(len(page.scripts) == 1, f"{name}: {len(page.scripts)} scripts, want only the report's own")
    csp = [value for tag, attr, value in page.attributes if tag == "meta" and attr == "content" and "script-src" in (value or "")]
    if page.scripts and csp:
        digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
        check(f"'sha256-{digest}'" in csp[0], f"{name}: the script's hash is not the one the CSP allows")
        check("default-src 'none'" in csp[0], f"{name}: the CSP allows more than nothing by default")
    else:
        check(False, f"{name}: no Content-Security-Policy")
    data_rows = [row for row in page.rows if row[0] and ({"text", "binary"} & set(row[0].split()))]
    check(len(data_rows) == len(messages), f"{name}: {len(data_rows)} message rows, the capture has {len(messages)} messages")
    text = squeeze("".join(page.text))
    for message in messages:
        if "text" in (message.get("payload") or {}):
            shown = squeeze(visible(message["payload"]["text"][:100000]))
            check(shown in text, f"{name}: message not in the page's text: {message['payload']['text'][:80]!r}")
    return data_rows


def report(capture, extra=()):
    out = tempfile.NamedTemporaryFile(suffix=".html", delete=False).name
    keys = re.sub(r"\.pcap(ng)?$", ".keys", capture)
    args = [WSTAP, "read", capture, "--format", "html", "-o", out, *extra]
    if os.path.exists(keys):
        args += ["--keylog", keys]
    run = subprocess.run(args, capture_output=True, text=True)
    check(run.returncode == 0, f"{capture}: exit {run.returncode}: {run.stderr.strip()}")
    return out


def messages_of(capture):
    keys = re.sub(r"\.pcap(ng)?$", ".keys", capture)
    args = [WSTAP, "read", capture, "--format", "ndjson"] + (["--keylog", keys] if os.path.exists(keys) else [])
    lines = subprocess.run(args, capture_output=True, text=True).stdout.splitlines()
    return [event for event in map(json.loads, lines) if event.get("event") == "message"]


def chromium_dom(path, fragment=""):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    profile = tempfile.mkdtemp()
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={profile}", "--dump-dom", "file://" + os.path.abspath(path) + fragment],
                         capture_output=True, text=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    return run.stdout


def main():
    names = sorted(n for n in os.listdir(CAPTURES) if n.endswith((".pcap", ".pcapng")))
    for name in names:
        capture = os.path.join(CAPTURES, name)
        path = report(capture)
        with open(path, encoding="utf-8") as f:
            check_page(name, parse(f.read()), messages_of(capture))
        os.unlink(path)
    print(f"static checks: {len(names)} reports")

    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        check(False, "chromium is not installed (scripts/install-deps.sh --test installs it)")
    else:
        capture = os.path.join(CAPTURES, "html-markup.pcap")
        path = report(capture)
        messages = messages_of(capture)
        dom = chromium_dom(path)
        page = parse(dom)
        head_title = re.search(r"<head>.*?<title>(.*?)</title>", dom, re.S)
        check(head_title is not None and "PWNED" not in head_title.group(1), "html-markup: a payload changed the title")
        check_page("html-markup (Chromium DOM)", page, messages)
        check(any("<script>document.title='PWNED'</script>" in t for t in page.text), "html-markup: the script payload is not shown as text")
        searched = parse(chromium_dom(path, "#search=onerror"))
        matching = [row for row in searched.rows if "onerror" in row[2].lower()]
        check(len(matching) >= 2, f"html-markup: search found {len(matching)} rows with 'onerror'")
        check(all(not hidden for _, hidden, _ in matching), "html-markup: a row with the search term is hidden")
        check(all(hidden for _, hidden, text in searched.rows if "onerror" not in text.lower()),
              "html-markup: a row without the search term is shown")
        check("<mark>" in "".join(re.findall(r"<tr class=\"m[^\"]*\">.*?</tr>", chromium_dom(path, "#search=onerror"), re.S)),
              "html-markup: the search term is not highlighted")
        shown = chromium_dom(path, "#show=issues")
        check('<body data-show="issues">' in shown, "html-markup: #show=issues did not choose the issues filter")
        os.unlink(path)
        print(f"chromium: {len(messages)} messages, {len(searched.rows)} rows, {len(matching)} match the search")
        lanes_checked = 0
        for name in ["rejected.pcap", "bad-accept.pcap", "text-echo.pcap", "ping-close-codes.pcap"]:
            capture = os.path.join(CAPTURES, name)
            path = report(capture)
            dom = chromium_dom(path)
            lanes = dict(re.findall(r'<g class="lane [a-z]+ outcome-([a-z-]+)" data-conn="(\d+)"', dom)[::1])
            lanes = {conn: outcome for outcome, conn in re.findall(r'<g class="lane [a-z]+ outcome-([a-z-]+)" data-conn="(\d+)"', dom)}
            keys = re.sub(r"\.pcap(ng)?$", ".keys", capture)
            lines = subprocess.run([WSTAP, "read", capture, "--format", "ndjson"], capture_output=True, text=True).stdout.splitlines()
            closes = {str(e["connection"]): e["outcome"] for e in map(json.loads, lines) if e.get("event") == "connection_close"}
            check(lanes == closes, f"{name}: timeline lanes {lanes} want the outcomes {closes}")
            for conn, outcome in closes.items():
                failed = outcome in ("close-unanswered", "abnormal-closure", "reset", "refused", "handshake-failed", "no-response")
                style = re.search(rf'<g class="lane ([a-z]+) outcome-{outcome}" data-conn="{conn}"', dom)
                check(style is not None and (style.group(1) == "bad") == failed and (style.group(1) != "ok" or outcome == "closed-cleanly"),
                      f"{name}: lane #{conn} ({outcome}) coloured {style.group(1) if style else None}")
            lanes_checked += len(lanes)
            os.unlink(path)
        print(f"chromium: {lanes_checked} timeline lanes match their connections' outcomes")

    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failures")
    sys.exit(1 if failures else 0)


main()
