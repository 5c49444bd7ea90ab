"""Everything with side effects, one small module per outside system: the Docker Engine (SDK),
BuildKit (the docker CLI), a registry's HTTP API, git, the host, and the pip and apt resolvers.
Stages receive these; tests hand in fakes."""
