"""The selection library: shops' commission plans for anchors, and samples."""
