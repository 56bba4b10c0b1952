"""`s2s sweep` and `s2s dashboard`: an ablation file run as an Optuna study (or exported as a W&B sweep).

plan.py expands the file into arms x seeds; storage.py opens Optuna storage and keeps the trial
protocol; launch.py holds the launch parameters; coordinator.py enqueues and supervises workers
(worker.py), each running trials (trial.py) in run directories that rundir.py decides about;
status.py answers `status` and `--dry-run`; commands.py holds the command handlers.
"""
