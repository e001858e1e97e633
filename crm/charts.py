"""Line and bar charts as inline SVG, drawn on the server: no script, no CDN."""

import math

from django.utils.html import format_html, format_html_join

COLOURS = ["#417690", "#e07b39", "#2e9e5b", "#b8336a", "#7d5ba6", "#c9a227"]
MONEY_COLOURS = ["#2e9e5b", "#ba2121"]  # revenue green, cost red
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 900, 260, 48, 16, 16, 36


def line_chart(
    days,
    series,
    chart_id="stats-chart",
    label="Leads and goals per day",
    axis=str,
    width=WIDTH,
    colours=COLOURS,
):
    """`series` is [(label, [value per day])]; returns safe SVG markup. `axis`
    writes a grid line's value (money with thousands separators); `chart_id`
    tells two charts of one page apart; a narrower `width` keeps the text
    readable where the chart is drawn small."""
    highest = max([1, *(v for _, values in series for v in values)])
    # A multiple of 4: the five grid lines get whole numbers (math.ceil: Decimal's
    # floor division rounds toward zero, which would put the top under the highest).
    top = math.ceil(highest / 4) * 4
    marks = [axis(top * k // 4) for k in range(5)]
    # Room for the longest grid value (about 7 px a character at 11 px).
    pad_l = max(PAD_L, 12 + 7 * max(len(m) for m in marks))
    n = max(len(days), 1)
    placed, legend_rows = legend_layout([name for name, _ in series], pad_l, width - PAD_R)
    # Each further legend row pushes the plot down and the chart taller.
    pad_t, height = PAD_T + 16 * (legend_rows - 1), HEIGHT + 16 * (legend_rows - 1)
    plot_w, plot_h = width - pad_l - PAD_R, HEIGHT - PAD_T - PAD_B

    def x(i):
        return pad_l + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v):
        return pad_t + plot_h - plot_h * v / top

    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#ddd"/>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#666">{}</text>',
        (
            (
                pad_l,
                width - PAD_R,
                f"{y(top * k / 4):.1f}",
                f"{y(top * k / 4):.1f}",
                pad_l - 6,
                f"{y(top * k / 4) + 4:.1f}",
                marks[k],
            )
            for k in range(5)
        ),
    )
    # A day's label at most every 60 px, counted back from the last day, which always has one.
    step = max(1, -(-(n - 1) * 60 // plot_w))
    ticks = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="#666">{}</text>',
        (
            (f"{x(i):.1f}", height - 12, f"{d:%m-%d}")
            for i, d in enumerate(days)
            if (n - 1 - i) % step == 0
        ),
    )
    lines = format_html_join(
        "",
        '<polyline class="series" data-label="{}" fill="none" stroke="{}" stroke-width="2" '
        'points="{}"/>',
        (
            (
                name,
                colours[k % len(colours)],
                " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values)),
            )
            for k, (name, values) in enumerate(series)
        ),
    )
    legend = format_html_join(
        "",
        '<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
        '<text x="{}" y="{}" font-size="12">{}</text>',
        (
            (at, 4 + 16 * row, colours[k % len(colours)], at + 14, 13 + 16 * row, name)
            for k, ((name, _), (at, row)) in enumerate(zip(series, placed, strict=True))
        ),
    )
    return format_html(
        '<svg id="{}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
        'width="100%" height="{}" role="img" aria-label="{}">'
        "{}{}{}{}</svg>",
        chart_id,
        width,
        height,
        height,
        label,
        grid,
        ticks,
        lines,
        legend,
    )


def legend_layout(names, left, right):
    """([(x, row)] per name, rows): legend entries side by side, wrapped to a new
    row where the next would run past `right` (about 7 px a character)."""
    x, row, placed = left, 0, []
    for name in names:
        wide = 14 + 7 * len(str(name)) + 18
        if x + wide > right and x > left:
            x, row = left, row + 1
        placed.append((x, row))
        x += wide
    return placed, row + 1


def bar_chart(title, bars):
    """`bars` is [(label, value, value as text)], drawn as horizontal bars; safe SVG markup."""
    row_h, label_w, top = 22, 220, PAD_T + 16  # room for the title
    height = top + row_h * max(len(bars), 1) + 8
    highest = max([1, *(v for _, v, _ in bars)])
    plot_w = WIDTH - label_w - PAD_R - 80

    def rows():
        for k, (label, value, text_value) in enumerate(bars):
            y = top + row_h * k
            text = str(label)
            yield (
                label_w - 6,
                y + 15,
                text if len(text) <= 32 else text[:31] + "…",
                label_w,
                y + 3,
                f"{plot_w * max(value, 0) / highest:.1f}",
                COLOURS[0],
                label,
                f"{label_w + plot_w * max(value, 0) / highest + 6:.1f}",
                y + 15,
                text_value,
            )

    body = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="12" text-anchor="end">{}</text>'
        '<rect class="bar" x="{}" y="{}" height="16" width="{}" fill="{}" data-label="{}"/>'
        '<text x="{}" y="{}" font-size="11" fill="#666">{}</text>',
        rows(),
    )
    return format_html(
        '<svg id="stats-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
        'width="100%" height="{}" role="img" aria-label="{}">'
        '<text x="{}" y="{}" font-size="12" font-weight="bold">{}</text>{}</svg>',
        WIDTH,
        height,
        height,
        title,
        label_w,
        PAD_T,
        title,
        body,
    )
