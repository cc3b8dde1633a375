"""What the plugin API's routes need beyond one call to a lower layer: the glue of a resource that only
the API has (reading the catalog for a request, shaping an approval for the calling user). One module
per resource; the rules themselves stay in ``autopilot_provider``."""
