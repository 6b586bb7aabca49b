"""Inside a trial (torch): the pipeline, the training loop, augmentation, evaluation, defense stages, the artefact cache."""
