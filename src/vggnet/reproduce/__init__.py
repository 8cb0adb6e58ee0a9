"""The paper's experiments (Sect. 4, Tables 3-6) as one command: the plan and its runs (``plan``), the statistics
that judge each of the paper's findings (``stats``) and the report that writes the tables, verdicts and figure from
the runs' saved posteriors (``report``). It sits above everything it runs: it may import training, evaluation, the
model and the data layer, and nothing imports it but the command line.
"""
