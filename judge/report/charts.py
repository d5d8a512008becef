"""Inline SVG charts for the HTML report: grade bars, win/tie/loss bar, KL histogram, KL scatter.

Each function takes numbers already in the scorecard and returns one ``<svg>`` string that scales
to its container (``viewBox``, width 100%). Labels are escaped; nothing is fetched.
"""

from __future__ import annotations

import math
from html import escape

BASE_COLOUR = "#5b8def"
COMP_COLOUR = "#f08a24"
WIN, TIE, LOSS = "#2e9e5b", "#b8bec6", "#d9453a"
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" {_FONT}>'
            f"<title>{escape(label)}</title>{''.join(body)}</svg>")


def _num(x: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def grade_bars(rows: list[tuple[str, float, float]], names: tuple[str, str]) -> str:
    """Horizontal bars per category, baseline above compressed, on a 0-10 axis."""
    label_w, bar_w, row_h, top = 110, 420, 34, 28
    height = top + row_h * len(rows) + 10
    body = [f'<rect x="{label_w}" y="6" width="12" height="12" fill="{BASE_COLOUR}"/>',
            f'<text x="{label_w + 16}" y="16">{escape(names[0])}</text>',
            f'<rect x="{label_w + 190}" y="6" width="12" height="12" fill="{COMP_COLOUR}"/>',
            f'<text x="{label_w + 206}" y="16">{escape(names[1])}</text>']
    for tick in range(0, 11, 2):
        x = label_w + bar_w * tick / 10
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 10}" '
                    f'stroke="#e3e6ea"/>')
        body.append(f'<text x="{x:.1f}" y="{height}" text-anchor="middle" fill="#6b7280">{tick}</text>')
    for i, (label, base, comp) in enumerate(rows):
        y = top + i * row_h
        body.append(f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end">{escape(label)}</text>')
        for j, (value, colour) in enumerate(((base, BASE_COLOUR), (comp, COMP_COLOUR))):
            w = 0.0 if math.isnan(value) else bar_w * max(0.0, min(value, 10.0)) / 10
            yy = y + 3 + j * 14
            body.append(f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="12" fill="{colour}">'
                        f"<title>{escape(label)}: {escape(names[j])} {_num(value)}</title></rect>")
            body.append(f'<text x="{label_w + w + 4:.1f}" y="{yy + 10}" font-size="10">'
                        f"{_num(value)}</text>")
    return _svg(label_w + bar_w + 40, height + 4, body, "Mean grade per category, both models")


def wtl_bar(wins: int, ties: int, losses: int, role: str) -> str:
    """One stacked bar: compressed wins | ties | baseline wins, with counts."""
    width, bar_h = 560, 28
    n = wins + ties + losses
    body = []
    x = 0.0
    parts = ((wins, WIN, f"{role} wins"), (ties, TIE, "ties"), (losses, LOSS, "baseline wins"))
    for count, colour, name in parts:
        w = width * count / n if n else 0.0
        if w > 0:
            body.append(f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
                        f"<title>{escape(name)}: {count}</title></rect>")
            if w > 24:
                body.append(f'<text x="{x + w / 2:.1f}" y="{4 + bar_h / 2 + 4}" text-anchor="middle" '
                            f'fill="#fff" font-weight="600">{count}</text>')
        x += w
    lx = 0
    for _, colour, name in parts:
        body.append(f'<rect x="{lx}" y="{bar_h + 14}" width="12" height="12" fill="{colour}"/>'
                    f'<text x="{lx + 16}" y="{bar_h + 24}">{escape(name)}</text>')
        lx += 30 + 7 * len(name)
    return _svg(width, bar_h + 32, body, f"Pairwise outcomes: {wins} wins, {ties} ties, {losses} losses")


def _edge_label(edge: float) -> str:
    if edge == 0:
        return "0"
    exp = math.log10(edge)
    return f"1e{round(exp)}" if abs(exp - round(exp)) < 1e-9 else ""


def kl_histogram(edges: list[float], counts: list[int], unit: str) -> str:
    """Vertical bars over log-spaced bins (drawn equally wide); the first bin starts at 0."""
    left, width, height, bottom = 44, 520, 170, 36
    n = len(counts)
    peak = max(counts) if counts else 0
    bw = width / max(n, 1)
    body = [f'<line x1="{left}" y1="{height}" x2="{left + width}" y2="{height}" stroke="#9aa1a9"/>',
            f'<text x="{left - 6}" y="14" text-anchor="end" fill="#6b7280">{peak}</text>',
            f'<text x="{left - 6}" y="{height}" text-anchor="end" fill="#6b7280">0</text>']
    for i, count in enumerate(counts):
        h = (height - 10) * count / peak if peak else 0.0
        x = left + i * bw
        body.append(f'<rect x="{x + 1:.1f}" y="{height - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" '
                    f'fill="{COMP_COLOUR}"><title>{count} {escape(unit)}s with KL in '
                    f"[{edges[i]:.2g}, {edges[i + 1]:.2g}) nats</title></rect>")
    for i, edge in enumerate(edges):
        label = _edge_label(edge)
        if label:
            x = left + i * bw
            body.append(f'<text x="{x:.1f}" y="{height + 16}" text-anchor="middle" '
                        f'fill="#6b7280">{label}</text>')
    body.append(f'<text x="{left + width / 2}" y="{height + bottom - 4}" text-anchor="middle">'
                f"KL per {escape(unit)} (nats, log scale)</text>")
    return _svg(left + width + 24, height + bottom, body, f"Histogram of KL per {unit}")


def kl_scatter(points: list[tuple[float, float, str]]) -> str:
    """Grade drop (y) against mean KL (x, log scale) per item; each dot has its label as a tooltip."""
    left, width, top, height, bottom = 48, 500, 10, 220, 40
    xs = [max(p[0], 1e-5) for p in points]
    ys = [p[1] for p in points]
    x_lo = math.floor(math.log10(min(xs))) if xs else -3
    x_hi = math.ceil(math.log10(max(xs))) if xs else 0
    x_hi = max(x_hi, x_lo + 1)
    y_hi = max([2.0] + [abs(y) for y in ys])
    y_lo = -y_hi

    def px(x: float) -> float:
        return left + width * (math.log10(x) - x_lo) / (x_hi - x_lo)

    def py(y: float) -> float:
        return top + height * (y_hi - y) / (y_hi - y_lo)

    body = [f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#d5d9de"/>',
            f'<line x1="{left}" y1="{py(0):.1f}" x2="{left + width}" y2="{py(0):.1f}" stroke="#9aa1a9" '
            f'stroke-dasharray="4 3"/>']
    for e in range(x_lo, x_hi + 1):
        x = px(10.0 ** e)
        body.append(f'<text x="{x:.1f}" y="{top + height + 16}" text-anchor="middle" '
                    f'fill="#6b7280">1e{e}</text>')
    for y in (y_lo, 0.0, y_hi):
        body.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end" fill="#6b7280">'
                    f"{y:+.0f}</text>")
    for (x, y), (_, _, label) in zip(zip(xs, ys), points):
        colour = LOSS if y >= 2 else (COMP_COLOUR if y > 0 else BASE_COLOUR)
        body.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4.5" fill="{colour}" '
                    f'fill-opacity="0.7"><title>{escape(label)}</title></circle>')
    body.append(f'<text x="{left + width / 2}" y="{top + height + bottom - 6}" text-anchor="middle">'
                "mean KL of the item (nats, log scale)</text>")
    body.append(f'<text x="12" y="{top + height / 2}" text-anchor="middle" '
                f'transform="rotate(-90 12 {top + height / 2})">grade drop (baseline − compressed)</text>')
    return _svg(left + width + 12, top + height + bottom, body, "Grade drop against KL per item")
