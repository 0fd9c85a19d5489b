"""Model registry: MONAI bundles on disk, their versions and states in the database.

- :mod:`~pacs_ai.registry.bundle` reads and checks bundle folders and builds their network;
- :mod:`~pacs_ai.registry.validate` runs a bundle on synthetic input of its declared shape;
- :mod:`~pacs_ai.registry.runner` holds a loaded bundle for inference;
- :mod:`~pacs_ai.registry.service` registers versions and changes their state;
- :mod:`~pacs_ai.registry.preprocess` and :mod:`~pacs_ai.registry.transforms` turn DICOM
  into the inputs of our own bundles; :mod:`~pacs_ai.registry.metrics` scores them.

Nothing is imported here, so that the tables (:mod:`~pacs_ai.registry.schema`) load without
torch and MONAI.
"""
