"""Analysis of finished runs: reading run folders and their TensorBoard logs (`runs`), grouping
runs by configuration (`groups`), statistics across seeds (`stats`), and the comparison's
tables, markdown and plots (`report`). Used by scripts/compare_runs.py."""
