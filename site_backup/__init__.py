"""Back up a directory tree to Azure Blob Storage.

Plain Python: nothing here knows about Azure Functions. The Functions layer in
``blueprints/`` only translates triggers into calls to this package.
"""
