"""Labelling: an oversight graph over a dataset split, one verdict per row into a durable store.

`label` runs it (`w2sg label`); `store` / `sqlite` / `claims` / `shards` / `merge` keep the
labels durable, shared by workers and split across machines; `provenance` is what each label
records; `human` queues rows for people; `judges` trains the classifier judges; `soft_labels`
calibrates and aggregates the p(true) columns; `export` writes them out.
"""
