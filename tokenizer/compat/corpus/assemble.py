"""Assembles corpus.txt, the multi-script text the equivalence test tokenizes with both
gptoss-tokenizer and tiktoken-rs, from files found on a Debian machine with CPython installed.

Sections (each preceded by a line `### source`):
  * CPython's test/cjkencodings/*-utf8.txt (Chinese, Japanese, Korean prose);
  * glibc locale data, /usr/share/i18n/locales/*: the quoted strings with <Uxxxx> escapes decoded
    (month and day names, yes/no expressions: Arabic, Devanagari, Thai, Georgian, Ethiopic, ...);
  * translated manual pages, /usr/share/man/{ru,uk,ja,zh_CN,de,fr,pl,tr,cs}/man1 (roff source);
  * source code: a few CPython standard-library modules.
Usage: python3 assemble.py > corpus.txt
"""

import glob
import gzip
import os
import re
import sys
import sysconfig

LIMIT = 24_000  # characters per source file, to keep the corpus near 400 kB


def emit(source, text):
    sys.stdout.write(f"### {source}\n{text[:LIMIT]}\n")


stdlib = sysconfig.get_paths()["stdlib"]
for path in sorted(glob.glob(os.path.join(stdlib, "test", "cjkencodings", "*-utf8.txt")))[:8]:
    with open(path, encoding="utf-8") as f:
        emit(os.path.relpath(path, stdlib), f.read())

escape = re.compile(r"<U([0-9A-Fa-f]{4,6})>")
strings = re.compile(r'"([^"\n]*)"')
locale_lines = []
for path in sorted(glob.glob("/usr/share/i18n/locales/*")):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        continue
    decoded = []
    for s in strings.findall(text):
        if "<U" in s:
            decoded.append(escape.sub(lambda m: chr(int(m.group(1), 16)), s).replace(";", " "))
    if decoded:
        locale_lines.append(f"{os.path.basename(path)}: " + " ".join(decoded)[:1200])
emit("/usr/share/i18n/locales/*", "\n".join(locale_lines)[: LIMIT * 8])

for lang in ["ru", "uk", "ja", "zh_CN", "de", "fr", "pl", "tr", "cs"]:
    pages = sorted(glob.glob(f"/usr/share/man/{lang}/man1/*.gz"))[:2]
    for path in pages:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            emit(path, f.read())

for module in ["textwrap.py", "difflib.py", "json/decoder.py"]:
    with open(os.path.join(stdlib, module), encoding="utf-8") as f:
        emit(f"python stdlib {module}", f.read())
