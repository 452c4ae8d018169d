"""Run files: the run directory (``run_dir``: config, metrics, checkpoints), the layout of ``summary.json``
(``summary``: the evaluations at the run's milestones and the table shown of them) and the report
(``report``: HTML and Markdown built from a run directory alone)."""
