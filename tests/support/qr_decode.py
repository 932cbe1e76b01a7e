#!/usr/bin/env python3
"""Decodes a QR code drawn in a terminal with half blocks, for keygate tests.

    qr_decode.py dark|light < drawing

The drawing (two module rows a line: '█' both light, '▀' top, '▄' bottom,
space neither) is painted as a terminal would show it, foreground on a
`dark` or `light` background with a wide border of that background, and
read by zbar (Debian's python3-zbar, so run with /usr/bin/python3). Prints
what each code found holds, one a line; exits 1 when none is found.
"""

import sys

import zbar

PIXELS = 6  # per module: a phone photo, not a one-pixel thumbnail
BORDER = 8  # modules of terminal background around the drawing

HALVES = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}


def main():
    background = sys.argv[1]
    rows = []
    for line in sys.stdin.read().splitlines():
        top, bottom = zip(*(HALVES[c] for c in line))
        rows += [top, bottom]
    width = max(len(r) for r in rows) + 2 * BORDER
    height = len(rows) + 2 * BORDER
    fg, bg = (255, 0) if background == "dark" else (0, 255)
    pixels = bytearray()
    for y in range(height):
        y_in = y - BORDER
        line = bytearray()
        for x in range(width):
            x_in = x - BORDER
            filled = 0 <= y_in < len(rows) and 0 <= x_in < len(rows[y_in]) and rows[y_in][x_in]
            line += bytes([fg if filled else bg]) * PIXELS
        pixels += bytes(line) * PIXELS
    image = zbar.Image(width * PIXELS, height * PIXELS, "Y800", bytes(pixels))
    scanner = zbar.ImageScanner()
    scanner.parse_config("enable")
    scanner.scan(image)
    found = [symbol.data for symbol in image.symbols]
    for data in found:
        print(data)
    sys.exit(0 if found else 1)


if __name__ == "__main__":
    main()
