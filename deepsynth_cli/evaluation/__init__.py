"""Scoring summaries in any language: ROUGE with language-aware tokens, baselines, corpus statistics.

Modules: `language` (tokens, stems and sentences per language), `rouge` (per-row ROUGE and corpus means),
`bootstrap` (confidence intervals, paired test), `output_stats` (length, loops, novel n-grams), `baselines`
(Lead-k). Nothing is imported here so that importing the package stays free.
"""
