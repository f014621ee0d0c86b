"""The names of the files in a run dir and a comparison dir: one table every layer can read.

vizlab.run.rundir.RunDir owns the directory (creating, locking, writing); report/ only reads the
log and the summaries, so the names live here, below both. Who writes each file, and the lock
rule, are in the README's development section.
"""

CONFIG_FILE = "config.json"  # the run's RunConfig (RunDir, at start and on resume)
EVENTS_FILE = "events.jsonl"  # every event, one JSON object a line (report.runlog.RunLogSink)
CHECKPOINT_FILE = "checkpoint.pt"  # the training state (RunDir, atomically, at epoch ends)
LOCK_FILE = ".lock"  # flock()ed by the process that owns the dir; holds its pid
CONTROL_DIR = "control"  # `vizlab control`'s command files, while the run takes commands
COMPARISON_JSON = "comparison.json"  # a comparison's members and results (compare.comparison)
COMPARISON_CSV = "comparison.csv"  # the same results as a table
