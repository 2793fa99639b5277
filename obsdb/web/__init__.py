"""`obsdb serve`: the review desk, a local web application over the catalog."""
