"""`s2s report`: run records -> tables, figures and a README (build.py puts them together).

load.py reads records into `ReportData`; labels.py names axes and metrics; table.py is the table type;
tables.py, significance.py and health.py build the tables; figures.py draws; readme.py writes README.md.
"""
