"""Page styling. Colours come from Gradio's CSS variables so light and dark mode both read."""

CSS = """
.rx-title { font-weight: 600; margin: 0.2rem 0 0.6rem; color: var(--body-text-color); }
.rx-cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 0.6rem; }
.rx-card { border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg);
           padding: 0.6rem 0.8rem; background: var(--block-background-fill); }
.rx-label { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.04em;
            color: var(--body-text-color-subdued); }
.rx-value { font-size: 1.45rem; font-weight: 700; color: var(--body-text-color);
            font-variant-numeric: tabular-nums; }
.rx-note { font-size: 0.78rem; color: var(--body-text-color-subdued); }
.rx-warning { font-size: 0.78rem; margin-top: 0.3rem; color: var(--color-accent); font-weight: 600; }
.rx-error { border: 1px solid var(--error-border-color, #ef4444); border-radius: var(--radius-lg);
            padding: 0.6rem 0.8rem; color: var(--error-text-color, #b91c1c);
            background: var(--error-background-fill, #fef2f2); }
.rx-progress { height: 0.6rem; border-radius: 0.3rem; margin: 0.2rem 0 0.4rem;
               background: var(--border-color-primary); overflow: hidden; }
.rx-progress-fill { height: 100%; background: var(--color-accent); transition: width 0.4s; }
/* Tables: headers break between words, never inside one ("batc h"); a wide table scrolls
   sideways instead of hiding its last columns. */
.rx-table th, .rx-table th * { word-break: keep-all !important; overflow-wrap: normal !important;
                               hyphens: none !important; }
.rx-table td, .rx-table td * { word-break: normal !important; }
.rx-table .table-wrap, .rx-table .table-container { overflow-x: auto !important; }
/* Narrow screens: a row's columns stack instead of squeezing (Gradio wraps a row only when
   its columns' min-widths do not fit; this makes every row under 900 px wrap). */
@media (max-width: 900px) {
  .rx-wrap { flex-wrap: wrap !important; }
  .rx-wrap > .column, .rx-wrap > div { min-width: 100% !important; }
}
"""
