"""The models at the edges: Azure resources, Power Platform environments, operations, findings, ids, geos."""
