"""Results, gates and reports: what a run or comparison concluded, and how it is written."""
