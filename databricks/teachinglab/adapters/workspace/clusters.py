"""Clusters: the list, events, stops, creates, pins and libraries (Clusters and Libraries APIs)."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from databricks.sdk.service import compute

from databricks.teachinglab.adapters.workspace.base import _dt, _ms
from databricks.teachinglab.core.model import ClusterEvent, ClusterInfo


class ClustersApi:
    def list_clusters(self, *, every_source: bool = False) -> list[ClusterInfo]:
        """Interactive clusters only (created in the UI or through the API): job clusters come and
        go with their runs and are not listed every poll. `every_source` lists them all (the audit)."""
        only = None if every_source else compute.ListClustersFilterBy(
            cluster_sources=[compute.ClusterSource.UI, compute.ClusterSource.API])
        return self._retry("list clusters", lambda: [self._cluster(c) for c in self.client.clusters.list(
            filter_by=only)])

    def get_cluster(self, cluster_id: str) -> ClusterInfo:
        return self._retry(f"get {cluster_id}", lambda: self._cluster(self.client.clusters.get(cluster_id)))

    @staticmethod
    def _cluster(c: compute.ClusterDetails) -> ClusterInfo:
        return ClusterInfo(
            cluster_id=c.cluster_id, name=c.cluster_name or c.cluster_id,
            state=c.state.value if c.state else "UNKNOWN",
            custom_tags=dict(c.custom_tags or {}),
            start_time=_dt(c.start_time), terminated_time=_dt(c.terminated_time),
            last_restarted_time=_dt(c.last_restarted_time), creator=c.creator_user_name,
            source=c.cluster_source.value if c.cluster_source else None,
            access_mode=c.data_security_mode.value if c.data_security_mode else None,
            node_type_id=c.node_type_id, driver_node_type_id=c.driver_node_type_id,
            num_workers=c.num_workers if c.autoscale is None else c.autoscale.max_workers,
            # Clusters API: "this field reflects the desired number of workers rather than the
            # actual current number"; a change means a resize the events will tell exactly.
            target_workers=c.num_workers,
            # The workers present now: "Nodes on which the Spark executors reside" (ClusterDetails);
            # only a RUNNING cluster's list is taken as a count (a resize moves it gradually).
            executors=len(c.executors) if c.executors is not None and c.state == compute.State.RUNNING else None,
            photon=c.runtime_engine == compute.RuntimeEngine.PHOTON,
        )

    def events(self, cluster_id: str, start: datetime, end: datetime,
               kinds: Iterable[str]) -> list[ClusterEvent]:
        types = [compute.EventType(k) for k in kinds]

        def fetch() -> list[ClusterEvent]:
            out = []
            for e in self.client.clusters.events(cluster_id, start_time=_ms(start), end_time=_ms(end),
                                                 order=compute.GetEventsOrder.ASC, event_types=types,
                                                 limit=500):
                if e.type is not None and e.timestamp is not None:
                    details = e.details
                    out.append(ClusterEvent(_dt(e.timestamp), e.type.value,
                                            details.current_num_workers if details else None,
                                            details.target_num_workers if details else None))
            return out

        return self._retry(f"events of {cluster_id}", fetch)

    def terminate(self, cluster_id: str) -> None:
        # Terminating a TERMINATING or TERMINATED cluster is a no-op, so this is safe to repeat.
        self._retry(f"terminate {cluster_id}", lambda: self.client.clusters.delete(cluster_id))

    def create_cluster(self, spec: dict) -> str:
        autoscale = spec.get("autoscale")
        details = self._once(f"create cluster {spec['cluster_name']}", lambda: self.client.clusters.create(
            cluster_name=spec["cluster_name"], spark_version=spec["spark_version"],
            node_type_id=spec["node_type_id"], driver_node_type_id=spec.get("driver_node_type_id"),
            autotermination_minutes=spec["autotermination_minutes"], custom_tags=spec["custom_tags"],
            autoscale=compute.AutoScale(min_workers=autoscale[0], max_workers=autoscale[1]) if autoscale else None,
            num_workers=None if autoscale else spec.get("num_workers", 0),
            data_security_mode=compute.DataSecurityMode(spec["data_security_mode"])
            if spec.get("data_security_mode") else None,
            single_user_name=spec.get("single_user_name")))
        return details.response.cluster_id

    def cluster_spec(self, cluster_id: str) -> dict:
        c = self._retry(f"get {cluster_id}", lambda: self.client.clusters.get(cluster_id))
        return {"cluster_name": c.cluster_name, "spark_version": c.spark_version, "node_type_id": c.node_type_id,
                "autotermination_minutes": c.autotermination_minutes, "custom_tags": dict(c.custom_tags or {}),
                "autoscale": (c.autoscale.min_workers, c.autoscale.max_workers) if c.autoscale else None,
                "data_security_mode": c.data_security_mode.value if c.data_security_mode else None,
                "single_user_name": c.single_user_name}

    def spark_versions(self) -> dict[str, str]:
        """The runtimes the workspace offers: key -> name ("15.4.x-scala2.12" -> "15.4 LTS ...")."""
        found = self._retry("spark versions", lambda: self.client.clusters.spark_versions())
        return {v.key: v.name or v.key for v in found.versions or [] if v.key}

    def node_types(self) -> list[tuple[str, float, int]]:
        """(node type id, cores, memory MB) of the VM types the workspace offers for clusters
        (Clusters API list-node-types), hidden and deprecated ones left out."""
        found = self._retry("node types", lambda: self.client.clusters.list_node_types())
        return [(n.node_type_id, float(n.num_cores or 0), int(n.memory_mb or 0)) for n in found.node_types or []
                if n.node_type_id and not n.is_hidden and not n.is_deprecated]

    def pinned_count(self) -> int:
        """Pinned clusters in the workspace. The query is built here: databricks-sdk 0.156 turns only
        top-level booleans into `true` (its _fix_query_string), so ListClustersFilterBy(is_pinned=True)
        went out as filter_by.is_pinned=True, which the API need not read as true."""
        def count() -> int:
            total, token = 0, None
            while True:
                query = {"filter_by.is_pinned": "true", "page_size": 100, **({"page_token": token} if token else {})}
                page = self.client.api_client.do("GET", "/api/2.1/clusters/list", query=query)
                total += len(page.get("clusters") or [])
                token = page.get("next_page_token")
                if not token:
                    return total
        return self._retry("count pinned clusters", count)

    def pin(self, cluster_id: str) -> None:
        self._retry(f"pin {cluster_id}", lambda: self.client.clusters.pin(cluster_id))

    def libraries_on(self, cluster_id: str) -> dict[tuple[str, str], tuple[str, str]]:
        """(kind, name) -> (status, message) of the libraries queued on a cluster."""
        out = {}
        for s in self._retry(f"libraries of {cluster_id}", lambda: list(self.client.libraries.cluster_status(cluster_id))):
            lib = s.library
            key = ("pypi", lib.pypi.package) if lib and lib.pypi else ("maven", lib.maven.coordinates) \
                if lib and lib.maven else ("other", str(lib))
            out[key] = (s.status.value if s.status else "", " ".join(s.messages or []))
        return out

    def install_libraries(self, cluster_id: str, pypi: list[str], maven: list[str]) -> None:
        libs = [compute.Library(pypi=compute.PythonPyPiLibrary(package=p)) for p in pypi]
        libs += [compute.Library(maven=compute.MavenLibrary(coordinates=m)) for m in maven]
        if libs:
            self._retry(f"libraries of {cluster_id}", lambda: self.client.libraries.install(cluster_id, libraries=libs))

    def permanent_delete(self, cluster_id: str) -> None:
        self._retry(f"delete {cluster_id}", lambda: self.client.clusters.permanent_delete(cluster_id))
