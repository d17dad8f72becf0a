"""Twins whose regions run in their own processes, network namespaces or containers."""
