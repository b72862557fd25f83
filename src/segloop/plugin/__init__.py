"""npe2 contributions without Qt: reader, writer, sample data."""
