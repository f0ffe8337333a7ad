"""A read-only port in front of MLflow: GET and HEAD go through, every write is refused (405).

MLflow has no read-only mode short of its own authentication, and a NetworkPolicy cannot tell a
read from a write, so the pods that only read the registry (predictors, storage initializer,
monitors) reach MLflow through this proxy; only training reaches MLflow's own port.
"""
