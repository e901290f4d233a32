"""`w2sg debaters train`: DPO rounds of expert iteration from the tool's own best-of-N debates."""
