"""`redline backtest`: the catalogue's alerts evaluated over real history (vmalert's replay), turned into
pages and tickets by a model of Alertmanager, with compliance figures and suggested thresholds.

Modules, bottom up: `notifications` (the Alertmanager model), `rules` (self-contained rules), `timeline`
(episodes on the evaluation grid), `datasource` (the read-only history), `engine` (vmalert and the
scratch store), `analysis`, `plot`, `report`, `catalogues` (a git ref's catalogue), `cli`.
"""
