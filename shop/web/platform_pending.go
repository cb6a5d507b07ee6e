package web

import "net/http"

func checkPlatform(cfg Config) error { return nil }

func (s *Server) platformRoutes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", s.healthz)
	m.Handle("GET /metrics", s.metrics())
	m.Handle("GET /assets/", assets())
	m.HandleFunc("GET /favicon.ico", serveFavicon)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r, nil) })
	return m
}
