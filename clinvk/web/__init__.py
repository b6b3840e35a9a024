"""
The HTTP layer: one Klein app per API family, mounted on one root resource.
"""
