#!/usr/bin/env python3
"""Keep the layers of DESIGN.md honest.

DESIGN.md lists the fetcher's units by layer, bottom first, in a table
between the markers "<!-- layers -->" and "<!-- /layers -->": one row a
layer, "| name | `unit`, `unit`, ... |".  A unit is a file name without
.c or .h (xfer_unreachable.c belongs to `xfer_unreachable`, listed with
xfer).  This script reads every #include "x.h" of src/fetcher/ and fails
if a unit includes a header of a layer above its own, or a header the
table does not list.  It also checks that the core library (src/oci_*)
includes nothing of the fetcher's and no nginx header, and that
ocimirrorctl (src/ctl/) includes only the core library and its own
headers: it reaches the fetcher through the socket's protocol alone.

Run from the top of the repository (make test does): prints nothing and
exits 0 when all is well, else one line per offending include and 1.
With --graph it prints the include graph of src/fetcher instead (each
unit and the fetcher headers it includes, .c and .h together), which
needs no DESIGN.md: run it in any checkout to compare.
"""

import glob
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*(.+?)\s*\|\s*$")
UNIT = re.compile(r"`([a-z_]+)`")


def layers(design):
    text = open(design).read()
    m = re.search(r"<!-- layers -->(.*?)<!-- /layers -->", text, re.S)
    if m is None:
        sys.exit("%s: no <!-- layers --> table" % design)
    level = {}
    rank = 0
    for line in m.group(1).splitlines():
        row = ROW.match(line.strip())
        if row is None or set(row.group(1)) <= set("-: "):
            continue
        units = UNIT.findall(row.group(2))
        if not units:
            continue
        for u in units:
            level[u] = (rank, row.group(1))
        rank += 1
    return level


def graph():
    deps = {}
    for path in sorted(glob.glob("src/fetcher/*.[ch]")):
        unit = os.path.splitext(os.path.basename(path))[0]
        for header in INCLUDE.findall(open(path).read()):
            dep = os.path.splitext(header)[0]
            if not header.startswith("oci") and dep != unit:
                deps.setdefault(unit, set()).add(dep)
        deps.setdefault(unit, set())
    for unit in sorted(deps):
        print("%s: %s" % (unit, " ".join(sorted(deps[unit]))))
    return 0


def main():
    if sys.argv[1:] == ["--graph"]:
        return graph()

    level = layers("DESIGN.md")
    problems = []

    for path in sorted(glob.glob("src/fetcher/*.[ch]")):
        unit = os.path.splitext(os.path.basename(path))[0]
        if unit not in level:
            problems.append("%s: unit %s is in no layer of DESIGN.md"
                            % (path, unit))
            continue
        mine = level[unit]
        for header in INCLUDE.findall(open(path).read()):
            dep = os.path.splitext(header)[0]
            if header.startswith("oci"):
                continue                  # the core library: below all
            if dep not in level:
                problems.append("%s: includes %s, which no layer lists"
                                % (path, header))
            elif level[dep][0] > mine[0]:
                problems.append("%s (%s) includes %s (%s): calls go down"
                                % (path, mine[1], header, level[dep][1]))

    for path in sorted(glob.glob("src/oci_*.[ch]") + ["src/oci.h"]):
        for header in INCLUDE.findall(open(path).read()):
            if not header.startswith("oci"):
                problems.append("%s: the core library includes %s"
                                % (path, header))
        if re.search(r"#\s*include\s+<ngx_", open(path).read()):
            problems.append("%s: the core library includes nginx" % path)

    ctl_own = {os.path.basename(h) for h in glob.glob("src/ctl/*.h")}
    for path in sorted(glob.glob("src/ctl/*.[ch]")):
        for header in INCLUDE.findall(open(path).read()):
            if not header.startswith("oci") and header not in ctl_own:
                problems.append("%s: ocimirrorctl includes %s (only the "
                                "core library and src/ctl/)" % (path, header))

    for p in problems:
        print("check-layers: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
