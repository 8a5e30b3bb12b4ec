"""The HTML reports as a browser shows them.

Generates a failing run's report (no_client_dedup, seed 1 of smoke: a
duplicate delivery) and a swarm's (seeds 99-101 with the canary bug: seed 100
fails, 99 and 101 pass), then for each page:
  - xmllint: the page is well-formed;
  - self-contained: no URL but the SVG/XHTML namespaces, no <script>, no
    external stylesheet, image or font;
  - chromium --dump-dom: the elements the page promises, counted (timelines,
    the duplicate's square, the offending ring, histogram bars, the seed table's
    rows, the fault-kind table);
  - chromium --screenshot: a PNG of the window's size that is not blank (many
    colours, enough non-background pixels) and shows the colours of what it
    must draw (histogram bars, the FAILED badge, the duplicate, failed seed
    rows).
Each check is also run on a broken page (a control) and must fail there.
The screenshots are left in $TEST_UNDECLARED_OUTPUTS_DIR (bazel-testlogs/...
/test.outputs/outputs.zip) for a person to look at.
"""
import html.parser
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

WIDTH, HEIGHT = 1400, 3000
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


# ---- PNG (no PIL): decode 8-bit RGB/RGBA, non-interlaced, as Chromium writes --------

def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(path + " is not a PNG")
    i, idat = 8, b""
    while i < len(data):
        n, = struct.unpack(">I", data[i:i + 4])
        kind, chunk = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        i += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
    if depth != 8 or interlace != 0 or ctype not in (2, 6):
        raise ValueError("unexpected PNG format %d/%d/%d" % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, p = [], bytearray(stride), 0
    for _ in range(h):
        f = raw[p]
        line = bytearray(raw[p + 1:p + 1 + stride])
        p += 1 + stride
        if f == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((a + prev[x]) >> 1)) & 255
        elif f == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def colour_counts(path):
    w, h, bpp, rows = read_png(path)
    counts = {}
    for row in rows:
        for x in range(0, len(row), bpp):
            c = row[x:x + 3]
            counts[c] = counts.get(c, 0) + 1
    return w, h, counts


def near(counts, rgb, tolerance=3):
    return sum(n for c, n in counts.items()
               if all(abs(c[k] - rgb[k]) <= tolerance for k in range(3)))


# ---- the checks ---------------------------------------------------------------------

def check_source(path):
    problems = []
    if subprocess.run(["xmllint", "--noout", path], stderr=subprocess.DEVNULL).returncode != 0:
        problems.append("xmllint: not well-formed")
    text = open(path, encoding="utf-8").read()
    urls = set(re.findall(r"(?:https?:|file:|//)[^\s\"'<>)]*", text)) - {
        "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xhtml"}
    urls = {u for u in urls if not u.startswith("//sim:")}  # bazel labels in commands
    if urls:
        problems.append("external URLs: %s" % sorted(urls)[:5])
    for tag in ("<script", "<link", "<img", "@import", "url("):
        if tag in text:
            problems.append("not self-contained: %s" % tag)
    return problems


class Elements(html.parser.HTMLParser):
    """Counts elements by "tag" and "tag.class" (each class), and rows per table class."""

    def __init__(self):
        super().__init__()
        self.count, self.table, self.rows = {}, [], {}

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        for key in [tag] + ["%s.%s" % (tag, c) for c in classes]:
            self.count[key] = self.count.get(key, 0) + 1
        if tag == "table":
            self.table.append(classes[0] if classes else "")
        elif tag == "tr" and self.table:
            self.rows[self.table[-1]] = self.rows.get(self.table[-1], 0) + 1

    def handle_endtag(self, tag):
        if tag == "table" and self.table:
            self.table.pop()


def chromium(args, url, tmp):
    env = dict(os.environ, HOME=tmp)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", "--user-data-dir=" + os.path.join(tmp, "profile"),
           "--window-size=%d,%d" % (WIDTH, HEIGHT)] + args + [url]
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
    if r.returncode != 0:
        fail("%s exited %d: %s" % (" ".join(cmd), r.returncode, r.stderr.decode()[-2000:]))
    return r.stdout.decode("utf-8", "replace")


def check_dom(path, tmp, expect):
    """expect: {"key": (min, max)} over Elements.count, "rows:CLASS" over table rows."""
    dom = chromium(["--dump-dom"], "file://" + path, tmp)
    p = Elements()
    p.feed(dom)
    problems = []
    for key, (lo, hi) in expect.items():
        n = p.rows.get(key[5:], 0) if key.startswith("rows:") else p.count.get(key, 0)
        if not lo <= n <= hi:
            problems.append("%s: %d, expected %d..%d" % (key, n, lo, hi))
    return problems


def check_png(path, png, tmp, colours):
    """colours: {name: ((r, g, b), min pixels)}."""
    chromium(["--screenshot=" + png], "file://" + path, tmp)
    w, h, counts = colour_counts(png)
    problems = []
    if (w, h) != (WIDTH, HEIGHT):
        problems.append("screenshot %dx%d, expected %dx%d" % (w, h, WIDTH, HEIGHT))
    background = max(counts.values())
    busy = w * h - background
    if len(counts) < 100:
        problems.append("only %d colours: blank?" % len(counts))
    if busy < 0.04 * w * h:
        problems.append("only %d of %d pixels differ from the background" % (busy, w * h))
    for name, (rgb, least) in colours.items():
        n = near(counts, rgb)
        if n < least:
            problems.append("%s %s: %d pixels, expected at least %d" % (name, rgb, n, least))
    print("%s: %dx%d, %d colours, %d non-background pixels; %s" % (
        os.path.basename(png), w, h, len(counts), busy,
        ", ".join("%s %d px" % (k, near(counts, v[0])) for k, v in colours.items())))
    return problems


BLUE_BAR, RED, PURPLE, PINK, GREEN = (74, 123, 208), (192, 57, 43), (142, 68, 173), (251, 227, 224), (46, 139, 87)

RUN_DOM = {"svg.timeline": (1, 10), "rect.dup": (1, 100), "circle.offending": (1, 10),
           "svg.histogram": (3, 3), "rect.bar": (5, 100), "line.mark": (4, 12),
           "table.faults": (1, 10)}
RUN_COLOURS = {"histogram bars": (BLUE_BAR, 5000), "FAILED badge": (RED, 300),
               "duplicate squares (beyond the legend's 100 px)": (PURPLE, 200)}
SWARM_DOM = {"rows:seeds": (4, 4), "tr.failed": (1, 1), "rows:kinds": (2, 40),
             "svg.histogram": (3, 3), "rect.bar": (5, 100)}
SWARM_COLOURS = {"histogram bars": (BLUE_BAR, 5000), "failed seed row": (PINK, 2000),
                 "pass badges": (GREEN, 300)}


def report(out, name):
    path = os.path.join(out, name, "report.html")
    if not os.path.exists(path):
        fail("no report at " + path + ": " + str(os.listdir(out)))
    return path


def main():
    sim, scenario = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    tmp = os.environ.get("TEST_TMPDIR") or "/tmp/report_screenshot_test"
    shots = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or tmp
    os.makedirs(tmp, exist_ok=True)
    out = os.path.join(tmp, "reports")
    shutil.rmtree(out, ignore_errors=True)
    common = ["--scenario=" + scenario, "--report_dir=" + out]
    r = subprocess.run([sim, "run", "--seed=1", "--bug=no_client_dedup"] + common,
                       stdout=subprocess.DEVNULL)
    if r.returncode != 1:
        fail("the failing run exited %d, expected 1" % r.returncode)
    r = subprocess.run([sim, "swarm", "--first_seed=99", "--seeds=3", "--jobs=2", "--bug=canary"] + common,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if r.returncode != 1:
        fail("the canary swarm exited %d, expected 1 (seed 100 fails)" % r.returncode)
    run_page = report(out, "run-smoke-1-no_client_dedup")
    swarm_page = report(out, "swarm-smoke-99-3-canary")

    problems = []
    for page, dom, colours, png in (
            (run_page, RUN_DOM, RUN_COLOURS, "run_failing.png"),
            (swarm_page, SWARM_DOM, SWARM_COLOURS, "swarm.png")):
        p = check_source(page) + check_dom(page, tmp, dom) + \
            check_png(page, os.path.join(shots, png), tmp, colours)
        problems += ["%s: %s" % (png, x) for x in p]

    # The controls: the same checks fail on a page that lost its drawings, and
    # on one that is not well-formed or reaches out to the network.
    broken = os.path.join(tmp, "broken.html")
    text = open(run_page, encoding="utf-8").read()
    text = re.sub(r"<svg.*?</svg>", "", text, flags=re.S)
    text = text.replace("<h2>Summary</h2>", "<h2>Summary</h2><img src=\"https://example.com/x.png\"/><p>")
    open(broken, "w", encoding="utf-8").write(text)
    control = check_source(broken) + check_dom(broken, tmp, RUN_DOM)
    for needed in ("xmllint", "external URLs", "not self-contained", "svg.timeline", "rect.bar"):
        if not any(needed in c for c in control):
            problems.append("control: the checks did not catch a broken page (%s): %s" % (needed, control))
    blank = os.path.join(tmp, "blank.html")
    open(blank, "w").write("<!DOCTYPE html><html><body></body></html>")
    control = check_png(blank, os.path.join(tmp, "blank.png"), tmp, RUN_COLOURS)
    if not any("blank" in c for c in control) or not any("histogram bars" in c for c in control):
        problems.append("control: the screenshot checks passed a blank page: %s" % control)

    if problems:
        fail("\n  ".join([""] + problems))
    print("PASS: both pages well-formed, self-contained, with their elements and colours")


if __name__ == "__main__":
    main()
