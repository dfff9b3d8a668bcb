"""The region tree: province → prefecture → county → township → village."""
