"""Response bodies of the Fleet API, built from pydantic response models (also the OpenAPI source)."""
